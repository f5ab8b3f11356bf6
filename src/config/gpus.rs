//! One GPU, each catalog's name for it: an experiment (or a matrix over providers) names a GPU
//! once — portably (`H100 80GB`), or in any catalog's own spelling (RunPod's `NVIDIA H100 80GB
//! HBM3`, Vast's `H100 SXM`) — and each provider is asked for it in its own words. A name this
//! table does not know is passed to the provider as written (a catalog grows faster than this
//! table; the provider's answer says whether it knows it).

/// One card: the portable name, RunPod's GPU type id, Vast's `gpu_name` (spaces on the wire),
/// and the least memory per GPU (MB, Vast's unit) that tells this card from a smaller variant
/// sold under the same Vast name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Card {
    pub name: &'static str,
    pub runpod: &'static str,
    pub vast: &'static str,
    pub vast_min_ram_mb: Option<u64>,
}

const fn card(
    name: &'static str,
    runpod: &'static str,
    vast: &'static str,
    vast_min_ram_mb: Option<u64>,
) -> Card {
    Card {
        name,
        runpod,
        vast,
        vast_min_ram_mb,
    }
}

/// The cards both catalogs sell (RunPod's ids from its GPU list; Vast's names from its
/// offers, `reference/vast-ai.md`).
pub const CARDS: &[Card] = &[
    card("H100 80GB", "NVIDIA H100 80GB HBM3", "H100 SXM", None),
    card("H100 PCIe", "NVIDIA H100 PCIe", "H100 PCIE", None),
    card("H100 NVL", "NVIDIA H100 NVL", "H100 NVL", None),
    card("H200", "NVIDIA H200", "H200", None),
    card("B200", "NVIDIA B200", "B200", None),
    card(
        "A100 80GB SXM",
        "NVIDIA A100-SXM4-80GB",
        "A100 SXM4",
        Some(79_000),
    ),
    card(
        "A100 80GB PCIe",
        "NVIDIA A100 80GB PCIe",
        "A100 PCIE",
        Some(79_000),
    ),
    card("L40S", "NVIDIA L40S", "L40S", None),
    card("L40", "NVIDIA L40", "L40", None),
    card("A40", "NVIDIA A40", "A40", None),
    card("RTX 4090", "NVIDIA GeForce RTX 4090", "RTX 4090", None),
    card("RTX 5090", "NVIDIA GeForce RTX 5090", "RTX 5090", None),
    card("RTX A6000", "NVIDIA RTX A6000", "RTX A6000", None),
    card(
        "RTX 6000 Ada",
        "NVIDIA RTX 6000 Ada Generation",
        "RTX 6000Ada",
        None,
    ),
];

/// Who makes a GPU: it picks the server's image (CUDA or ROCm).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    Nvidia,
    Amd,
}

/// The vendor of `name` (any catalog's spelling): AMD for RunPod's `AMD Instinct …` ids and
/// the Instinct names (`MI300X`, `MI325X`, `MI355X`, …), NVIDIA otherwise (and without a GPU).
pub fn vendor(name: Option<&str>) -> Vendor {
    let Some(n) = name.map(|n| n.trim().to_ascii_uppercase()) else {
        return Vendor::Nvidia;
    };
    let instinct = n.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| {
        w.len() >= 4 && w.starts_with("MI") && w[2..].starts_with(|c: char| c.is_ascii_digit())
    });
    match n.starts_with("AMD") || n.contains("INSTINCT") || instinct {
        true => Vendor::Amd,
        false => Vendor::Nvidia,
    }
}

/// The card `name` is in any catalog's spelling (case and `_`/space aside), if known.
pub fn card_of(name: &str) -> Option<&'static Card> {
    let norm = |s: &str| s.trim().replace('_', " ").to_ascii_lowercase();
    let n = norm(name);
    CARDS
        .iter()
        .find(|c| [c.name, c.runpod, c.vast].iter().any(|x| norm(x) == n))
}

/// RunPod's GPU type id for `name`: the known card's id, else `name` as written.
pub fn runpod_id(name: &str) -> &str {
    card_of(name).map_or(name, |c| c.runpod)
}

/// Vast's `gpu_name` for `name` (and the card's least memory), else `name` as written with
/// `_` read as a space (Vast's CLI spelling).
pub fn vast_name(name: &str) -> (String, Option<u64>) {
    match card_of(name) {
        Some(c) => (c.vast.to_string(), c.vast_min_ram_mb),
        None => (name.trim().replace('_', " "), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_name_reaches_each_catalog_in_its_own_words() {
        for n in ["H100 80GB", "NVIDIA H100 80GB HBM3", "h100_sxm", "H100 SXM"] {
            assert_eq!(runpod_id(n), "NVIDIA H100 80GB HBM3", "{n}");
            assert_eq!(vast_name(n), ("H100 SXM".to_string(), None), "{n}");
        }
        assert_eq!(
            vast_name("A100 80GB SXM"),
            ("A100 SXM4".to_string(), Some(79_000))
        );
        // Unknown names pass as written (Vast's underscores read as spaces).
        assert_eq!(
            runpod_id("AMD Instinct MI300X OAM"),
            "AMD Instinct MI300X OAM"
        );
        assert_eq!(vast_name("RTX_3090"), ("RTX 3090".to_string(), None));
    }

    #[test]
    fn amd_instinct_names_are_amd_and_the_rest_nvidia() {
        for n in [
            "AMD Instinct MI300X OAM",
            "MI300X",
            "mi325x",
            "MI355X",
            "Instinct MI250",
        ] {
            assert_eq!(vendor(Some(n)), Vendor::Amd, "{n}");
        }
        for n in [
            "NVIDIA H100 80GB HBM3",
            "H100 80GB",
            "RTX 4090",
            "A100 SXM4",
            "MIG-1g",
        ] {
            assert_eq!(vendor(Some(n)), Vendor::Nvidia, "{n}");
        }
        assert_eq!(vendor(None), Vendor::Nvidia);
    }

    #[test]
    fn every_name_of_a_card_is_that_card_alone() {
        for c in CARDS {
            for n in [c.name, c.runpod, c.vast] {
                assert_eq!(card_of(n), Some(c), "{n}");
            }
        }
    }
}
