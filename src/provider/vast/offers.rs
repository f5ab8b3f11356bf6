//! Which Vast.ai offers a run may rent: a search per GPU the experiment names (its own name
//! mapped to Vast's, `config::gpus`), with the count, memory, CUDA, reliability, countries, a
//! price ceiling and an open port; the first GPU with offers wins, its offers cheapest first.
//! The answer is re-checked here against the same filters — a marketplace's search is a
//! snapshot, and an answer that ignored a filter must not rent what the user excluded.

use super::answers::Offer;
use super::api::VastApi;
use super::requests::OfferQuery;
use crate::config::{gpus, site::VastSite};
use crate::provider::ProviderError;

/// How many offers one search asks for.
const LIMIT: u32 = 64;

/// The search for GPU `gpu` (as the experiment names it), `count` of them.
pub fn query(site: &VastSite<'_>, gpu: &str, count: u32) -> OfferQuery {
    let (name, card_ram) = gpus::vast_name(gpu);
    let o = site.offers;
    OfferQuery {
        gpu_name: name,
        num_gpus: count,
        min_gpu_ram_mb: o.min_gpu_ram_gb.map(|g| u64::from(g) * 1000).or(card_ram),
        min_cuda: o.min_cuda,
        min_reliability: o.min_reliability,
        disk_gb: site.container_disk_gb,
        countries: o.countries.iter().map(|c| c.to_ascii_uppercase()).collect(),
        max_dph: o.max_price_per_hour_usd,
        limit: LIMIT,
    }
}

/// Whether offer `o` passes `q` by what it says of itself (a field it does not carry is not
/// held against it, except the price: an offer without one is never rented).
pub fn fits(o: &Offer, q: &OfferQuery) -> bool {
    let at_least = |v: Option<f64>, min: Option<f64>| match (v, min) {
        (Some(v), Some(min)) => v >= min,
        _ => true,
    };
    let country = o
        .geolocation
        .as_deref()
        .and_then(|g| g.rsplit(',').next())
        .map(|c| c.trim().to_ascii_uppercase());
    o.dph_total.is_some_and(|p| p.is_finite() && p >= 0.0)
        && q.max_dph
            .is_none_or(|m| o.dph_total.is_some_and(|p| p <= m))
        && o.num_gpus.is_none_or(|n| n == q.num_gpus)
        && o.gpu_name
            .as_deref()
            .is_none_or(|g| g.eq_ignore_ascii_case(&q.gpu_name))
        && o.direct_port_count.is_none_or(|n| n >= 1)
        && at_least(o.reliability, Some(q.min_reliability))
        && at_least(o.gpu_ram, q.min_gpu_ram_mb.map(|m| m as f64))
        && at_least(o.cuda_max_good, q.min_cuda)
        && (q.countries.is_empty() || country.is_none_or(|c| q.countries.contains(&c)))
}

/// The offers to try, cheapest first, for the first GPU that has any; `Err` says, per GPU,
/// what the search found.
pub async fn find(
    api: &VastApi,
    site: &VastSite<'_>,
    count: u32,
) -> Result<(String, Vec<Offer>), ProviderError> {
    let mut none = Vec::new();
    for &gpu in &site.gpu_types {
        let q = query(site, gpu, count);
        let all = api.search(&q).await.map_err(ProviderError::Vast)?;
        let seen = all.len();
        let mut ok: Vec<Offer> = all.into_iter().filter(|o| fits(o, &q)).collect();
        ok.sort_by(|a, b| {
            a.dph_total
                .unwrap_or(0.0)
                .total_cmp(&b.dph_total.unwrap_or(0.0))
        });
        if ok.is_empty() {
            none.push(format!(
                "{count}× {} ({gpu}): {seen} offer(s) found, none within the filters",
                q.gpu_name
            ));
            continue;
        }
        return Ok((q.gpu_name, ok));
    }
    Err(ProviderError::NoOffer(none))
}

/// One offer as the plan and the log say it.
pub fn describe(o: &Offer) -> String {
    format!(
        "offer {} ({}× {}{}, reliability {}, ${:.3}/hour)",
        o.id,
        o.num_gpus.unwrap_or(0),
        o.gpu_name.as_deref().unwrap_or("?"),
        o.geolocation
            .as_deref()
            .map(|g| format!(", {g}"))
            .unwrap_or_default(),
        o.reliability
            .map(|r| format!("{r:.3}"))
            .unwrap_or_else(|| "?".into()),
        o.dph_total.unwrap_or(0.0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::VastOptions;

    fn offer(v: serde_json::Value) -> Offer {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_search_names_the_gpu_in_vasts_words_and_keeps_the_users_filters() {
        let o = VastOptions {
            countries: vec!["us".into()],
            max_price_per_hour_usd: Some(3.0),
            ..VastOptions::default()
        };
        let site = VastSite {
            gpu_types: vec!["A100 80GB SXM"],
            container_disk_gb: 60,
            keep: false,
            offers: &o,
        };
        let q = query(&site, "A100 80GB SXM", 2);
        assert_eq!(q.gpu_name, "A100 SXM4");
        assert_eq!(q.min_gpu_ram_mb, Some(79_000));
        assert_eq!(q.countries, ["US"]);
        assert_eq!(q.max_dph, Some(3.0));
        assert_eq!(q.disk_gb, 60);
        let good = serde_json::json!({"id": 1, "gpu_name": "A100 SXM4", "num_gpus": 2,
            "gpu_ram": 81920, "dph_total": 2.5, "reliability": 0.99, "direct_port_count": 4,
            "geolocation": "Ohio, US"});
        assert!(fits(&offer(good.clone()), &q));
        for (k, v) in [
            ("dph_total", serde_json::json!(3.5)),
            ("dph_total", serde_json::Value::Null),
            ("gpu_ram", serde_json::json!(40960)),
            ("num_gpus", serde_json::json!(1)),
            ("reliability", serde_json::json!(0.9)),
            ("direct_port_count", serde_json::json!(0)),
            ("geolocation", serde_json::json!("Bavaria, DE")),
        ] {
            let mut bad = good.clone();
            bad[k] = v.clone();
            assert!(!fits(&offer(bad), &q), "{k} = {v}");
        }
    }
}
