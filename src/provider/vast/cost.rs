//! What a Vast.ai run is expected to cost, before anything is rented: the cheapest fitting
//! offer's `dph_total` (GPU and the priced disk; bandwidth is billed apart) × (provisioning
//! and model load + the workload) + a 20 % margin. Without an answer from the search, the
//! experiment's `price_per_hour_usd` stands in (said so), else the plan cannot be priced.

use std::time::Duration;

use super::api::VastApi;
use super::{api_key, offers};
use crate::config::{Resolved, Site};
use crate::provider::runpod::cost::PROVISION_AND_LOAD;
use crate::provider::{CostEstimate, ProviderError};

const MARGIN: f64 = 1.2;

pub async fn estimate(r: &Resolved, workload: Duration) -> Result<CostEstimate, ProviderError> {
    let inf = &r.experiment.infrastructure;
    let Site::Vast(site) = inf.site() else {
        return Err(ProviderError::PodFailed("not a Vast.ai experiment".into()));
    };
    let hours = (PROVISION_AND_LOAD + workload).as_secs_f64() * MARGIN / 3600.0;
    let api = VastApi::new(api_key(Some(r))?, None).map_err(ProviderError::Vast)?;
    let (price, source) = match offers::find(&api, &site, inf.gpu_count).await {
        Ok((_, found)) => {
            let o = &found[0];
            (
                o.dph_total.unwrap_or(0.0),
                format!(
                    "Vast.ai: the cheapest of {} fitting offer(s), {} with {} GB disk (bandwidth billed apart)",
                    found.len(),
                    offers::describe(o),
                    site.container_disk_gb
                ),
            )
        }
        Err(err) => match inf.price_per_hour_usd {
            Some(pp) => (
                pp,
                format!("infrastructure.price_per_hour_usd (Vast.ai's offers unavailable: {err})"),
            ),
            None => return Err(err),
        },
    };
    Ok(CostEstimate {
        price_per_hour_usd: Some(price),
        price_source: source,
        hours,
    })
}
