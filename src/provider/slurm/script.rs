//! The batch script a run submits: `#SBATCH` lines from the experiment, a first line of output
//! that says where the server listens, the setup lines, then the server. No secret is written
//! here: the job inherits the submitting environment (`sbatch`'s default `--export=ALL`).

use std::time::Duration;

use crate::config::{ContainerRuntime, Experiment, GpuFlag};
use crate::framework;
use crate::provider::local;

/// `--time` from `max_lifetime`: `D-HH:MM:SS`, at least a minute (Slurm counts minutes).
pub fn time_limit(d: Duration) -> String {
    let s = d.as_secs().max(60);
    format!(
        "{}-{:02}:{:02}:{:02}",
        s / 86_400,
        s % 86_400 / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// The server's port from the job's name: stable for a run, different between deployments.
/// It stays below 32768, where Linux's default ephemeral range (`ip_local_port_range`,
/// 32768–60999) begins: a port in that range can be held by any outgoing connection on the
/// node, and the server's `bind` would fail with "address already in use".
pub fn port_for(name: &str) -> u16 {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    PORTS.start + (h % u64::from(PORTS.end - PORTS.start)) as u16
}

/// Where a port from a job's name falls: under the ephemeral range.
pub const PORTS: std::ops::Range<u16> = 20_000..32_768;

/// The batch script: `#SBATCH` lines, a first line of output that says where the server
/// listens, the setup lines, then the server. No secret is written here: the job inherits
/// the submitting environment (`sbatch`'s default `--export=ALL`).
pub fn job_script(e: &Experiment, name: &str, port: u16, output: &str) -> String {
    let o = &e.infrastructure.slurm;
    let mut s = String::from("#!/bin/bash\n");
    let mut sb = |line: String| s.push_str(&format!("#SBATCH {line}\n"));
    sb(format!("--job-name={name}"));
    sb(format!("--output={output}"));
    sb(format!(
        "--time={}",
        time_limit(e.infrastructure.max_lifetime.as_duration())
    ));
    sb("--nodes=1".into());
    if let Some(p) = &o.partition {
        sb(format!("--partition={p}"));
    }
    if let Some(a) = &o.account {
        sb(format!("--account={a}"));
    }
    let n = e.infrastructure.gpu_count;
    match o.gpu_flag {
        GpuFlag::Gres => sb(format!("--gres=gpu:{n}")),
        GpuFlag::Gpus => sb(format!("--gpus={n}")),
        GpuFlag::None => {}
    }
    if o.container == ContainerRuntime::Pyxis {
        sb(format!("--container-image={}", framework::image(e)));
    }
    for line in &o.sbatch {
        sb(line.trim().to_string());
    }
    s.push_str("set -e\n");
    s.push_str(&format!(
        "echo \"llm-inf-bench: job $SLURM_JOB_ID on $(hostname) serves on port {port}\"\n"
    ));
    for (k, v) in &e.framework.env {
        s.push_str(&format!(
            "export {k}={}\n",
            framework::join_args(std::slice::from_ref(v))
        ));
    }
    for line in &o.setup {
        s.push_str(line);
        s.push('\n');
    }
    let command = server_command(e, port);
    let run = match o.container {
        ContainerRuntime::Apptainer => {
            // The GPUs into the container: NVIDIA's (`--nv`) or AMD's (`--rocm`).
            let gpus = match framework::vendor(e) {
                crate::config::gpus::Vendor::Nvidia => "--nv",
                crate::config::gpus::Vendor::Amd => "--rocm",
            };
            let mut a = vec!["apptainer".into(), "exec".into(), gpus.into()];
            a.push(format!("docker://{}", framework::image(e)));
            a.extend(command);
            a
        }
        _ => command,
    };
    s.push_str(&format!("exec {}\n", framework::join_args(&run)));
    s
}

/// `slurm.command` with `{port}` and `{model}`, else the framework's server on `port`.
fn server_command(e: &Experiment, port: u16) -> Vec<String> {
    let o = &e.infrastructure.slurm;
    if !o.command.is_empty() {
        return local::substitute(&o.command, port, &e.model.id);
    }
    let mut on_port = e.clone();
    on_port.framework.port = port;
    framework::server_command(&on_port, "0.0.0.0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_asks_for_what_the_experiment_says_and_holds_no_secret() {
        let mut e = Experiment::default();
        e.model.id = "org/m".into();
        e.infrastructure.gpu_count = 2;
        e.infrastructure.max_lifetime = crate::config::HumanDuration::from_secs(90 * 60 + 5);
        e.infrastructure.slurm.partition = Some("gpu".into());
        e.infrastructure.slurm.account = Some("lab".into());
        e.infrastructure.slurm.container = ContainerRuntime::Pyxis;
        e.infrastructure.slurm.sbatch = vec!["--mem=64G".into()];
        e.framework
            .env
            .insert("VLLM_LOGGING_LEVEL".into(), "DEBUG".into());
        let s = job_script(&e, "llm-inf-bench-x", 23456, "/r/x.server.log");
        for line in [
            "#SBATCH --job-name=llm-inf-bench-x",
            "#SBATCH --output=/r/x.server.log",
            "#SBATCH --time=0-01:30:05",
            "#SBATCH --partition=gpu",
            "#SBATCH --account=lab",
            "#SBATCH --gres=gpu:2",
            "#SBATCH --container-image=vllm/vllm-openai:v0.32.0",
            "#SBATCH --mem=64G",
            "export VLLM_LOGGING_LEVEL=DEBUG",
            "exec vllm serve org/m --host 0.0.0.0 --port 23456 --tensor-parallel-size 2",
        ] {
            assert!(s.contains(line), "{line}\n{s}");
        }
        assert!(!s.to_lowercase().contains("hf_token"));
        e.infrastructure.slurm.gpu_flag = GpuFlag::Gpus;
        e.infrastructure.slurm.container = ContainerRuntime::Apptainer;
        e.infrastructure.slurm.command =
            vec!["serve".into(), "--port={port}".into(), "{model}".into()];
        let s = job_script(&e, "n", 1, "o");
        assert!(s.contains("#SBATCH --gpus=2"), "{s}");
        assert!(
            s.contains(
                "exec apptainer exec --nv docker://vllm/vllm-openai:v0.32.0 serve --port=1 org/m"
            ),
            "{s}"
        );
        // On AMD GPUs: AMD's ROCm image, its GPUs passed with `--rocm`.
        e.infrastructure.gpu_type = Some("MI300X".into());
        let s = job_script(&e, "n", 1, "o");
        assert!(
            s.contains("exec apptainer exec --rocm docker://rocm/vllm:rocm7.14.0_cdna_ubuntu24.04_py3.14_pytorch_2.11.0_vllm_0.23.0 serve"),
            "{s}"
        );
    }

    #[test]
    fn the_port_comes_from_the_name() {
        for i in 0..2000 {
            let p = port_for(&format!("llm-inf-bench-{i}"));
            assert!((20_000..32_768).contains(&p), "{p}");
        }
        assert_ne!(port_for("llm-inf-bench-a"), port_for("llm-inf-bench-b"));
    }
}
