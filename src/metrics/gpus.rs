//! What each GPU can do at best: dense BF16 tensor throughput (no sparsity) and memory
//! bandwidth, from the vendors' data sheets — the denominators of MFU and MBU. A GPU type is
//! matched by the words in its name (RunPod's ids, `nvidia-smi` names, the simulator's), most
//! specific first; an unknown GPU has no MFU (the achieved TFLOP/s and TB/s are still
//! reported).
//!
//! Sources: NVIDIA H100 data sheet (SXM 989 TFLOPS BF16 dense, 3.35 TB/s; PCIe 756, 2.0 TB/s;
//! NVL 835, 3.9 TB/s), H200 data sheet (989, 4.8 TB/s), A100 data sheet (312; 80 GB SXM
//! 2.039 TB/s, 40 GB 1.555 TB/s), L40S data sheet (362 dense, 0.864 TB/s), L4 (121, 0.3 TB/s),
//! RTX 4090 (165 with FP32 accumulate halved to 82.6 for FP16 accumulate: the BF16 tensor rate
//! with FP32 accumulate, 165.2, is used; 1.008 TB/s), RTX A6000 (154.8, 0.768 TB/s), B200
//! (HGX B200 per GPU: 2.25 PFLOPS dense BF16, 8 TB/s), AMD Instinct MI300X (1307 dense BF16,
//! 5.3 TB/s), MI325X (1307, 6 TB/s), MI355X (2517 dense BF16, 8 TB/s).

/// A GPU's best case.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Peak {
    /// Dense BF16 tensor TFLOP/s.
    pub bf16_tflops: f64,
    /// Memory bandwidth, TB/s.
    pub tb_per_s: f64,
}

/// (words all in the name, peak); the first match wins, so more specific names come first.
const PEAKS: &[(&[&str], Peak)] = &[
    (
        &["h100", "pcie"],
        Peak {
            bf16_tflops: 756.0,
            tb_per_s: 2.0,
        },
    ),
    (
        &["h100", "nvl"],
        Peak {
            bf16_tflops: 835.0,
            tb_per_s: 3.9,
        },
    ),
    (
        &["h100"],
        Peak {
            bf16_tflops: 989.4,
            tb_per_s: 3.35,
        },
    ),
    (
        &["h200"],
        Peak {
            bf16_tflops: 989.4,
            tb_per_s: 4.8,
        },
    ),
    (
        &["b200"],
        Peak {
            bf16_tflops: 2250.0,
            tb_per_s: 8.0,
        },
    ),
    (
        &["a100", "40gb"],
        Peak {
            bf16_tflops: 312.0,
            tb_per_s: 1.555,
        },
    ),
    (
        &["a100"],
        Peak {
            bf16_tflops: 312.0,
            tb_per_s: 2.039,
        },
    ),
    (
        &["l40s"],
        Peak {
            bf16_tflops: 362.0,
            tb_per_s: 0.864,
        },
    ),
    (
        &["l4"],
        Peak {
            bf16_tflops: 121.0,
            tb_per_s: 0.3,
        },
    ),
    (
        &["4090"],
        Peak {
            bf16_tflops: 165.2,
            tb_per_s: 1.008,
        },
    ),
    (
        &["a6000"],
        Peak {
            bf16_tflops: 154.8,
            tb_per_s: 0.768,
        },
    ),
    (
        &["mi355x"],
        Peak {
            bf16_tflops: 2517.0,
            tb_per_s: 8.0,
        },
    ),
    (
        &["mi325x"],
        Peak {
            bf16_tflops: 1307.4,
            tb_per_s: 6.0,
        },
    ),
    (
        &["mi300x"],
        Peak {
            bf16_tflops: 1307.4,
            tb_per_s: 5.3,
        },
    ),
];

/// The peak of the GPU named `gpu_type`, if this table knows it.
pub fn peak(gpu_type: &str) -> Option<Peak> {
    let name = gpu_type.to_ascii_lowercase();
    let words: Vec<&str> = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    // "l4" must be a word of its own (not the start of "l40s").
    let has = |w: &&str| match *w {
        "l4" | "h100" | "h200" | "b200" | "a100" => words.iter().any(|x| x == w),
        w => name.contains(w),
    };
    PEAKS
        .iter()
        .find(|(need, _)| need.iter().all(has))
        .map(|(_, p)| *p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_names_find_their_peaks() {
        let p = |n| peak(n).map(|p| p.bf16_tflops);
        assert_eq!(p("NVIDIA H100 80GB HBM3"), Some(989.4));
        assert_eq!(p("NVIDIA H100 PCIe"), Some(756.0));
        assert_eq!(p("NVIDIA H100 NVL"), Some(835.0));
        assert_eq!(p("NVIDIA H200"), Some(989.4));
        assert_eq!(p("NVIDIA A100-SXM4-80GB"), Some(312.0));
        assert_eq!(
            peak("NVIDIA A100 40GB PCIe").map(|p| p.tb_per_s),
            Some(1.555)
        );
        assert_eq!(p("NVIDIA L40S"), Some(362.0));
        assert_eq!(p("NVIDIA L4"), Some(121.0));
        assert_eq!(p("NVIDIA GeForce RTX 4090"), Some(165.2));
        assert_eq!(p("AMD Instinct MI300X OAM"), Some(1307.4));
        assert_eq!(p("NVIDIA B200"), Some(2250.0));
        assert_eq!(p("simulated (h100-llama8b)"), Some(989.4));
        assert_eq!(p("cpu"), None);
    }
}
