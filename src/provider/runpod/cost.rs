//! What a RunPod run is expected to cost, before anything is rented: the catalog's price per
//! GPU × GPU count (fallback: `infrastructure.price_per_hour_usd`) × (provisioning and model
//! load + the workload) + a 20 % margin.

use std::time::Duration;

use super::api::RunPodApi;
use super::api_key;
use crate::config::{Cloud, Resolved};
use crate::provider::{CostEstimate, ProviderError};

/// Assumed time to get a pod running and the model loaded (image pull + weights).
pub const PROVISION_AND_LOAD: Duration = Duration::from_secs(10 * 60);
/// Safety margin on the whole estimate.
const MARGIN: f64 = 1.2;

/// The estimate for `workload` of measured time on one pod of the experiment's kind.
pub async fn estimate(r: &Resolved, workload: Duration) -> Result<CostEstimate, ProviderError> {
    let inf = &r.experiment.infrastructure;
    let hours = (PROVISION_AND_LOAD + workload).as_secs_f64() * MARGIN / 3600.0;
    let api = RunPodApi::new(api_key(Some(r))?, None).map_err(ProviderError::RunPod)?;
    let site = inf.runpod();
    let gpu = site.gpu_types.first().copied().unwrap_or_default();
    let (price, source) = match api.gpu_type(gpu).await {
        Ok(t) => {
            let per_gpu = match site.cloud {
                Cloud::Secure => t.price.secure,
                Cloud::Community => t.price.community,
            }
            .unwrap_or(0.0);
            (
                per_gpu * inf.gpu_count as f64,
                format!(
                    "RunPod catalog: ${per_gpu:.2}/hour per {gpu} × {}",
                    inf.gpu_count
                ),
            )
        }
        Err(err) => match inf.price_per_hour_usd {
            Some(pp) => (
                pp,
                format!("infrastructure.price_per_hour_usd (catalog unavailable: {err})"),
            ),
            None => return Err(ProviderError::RunPod(err)),
        },
    };
    Ok(CostEstimate {
        price_per_hour_usd: Some(price),
        price_source: source,
        hours,
    })
}
