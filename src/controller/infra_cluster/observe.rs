//! Observe step of a CAPTCluster's reconcile: what its VPC apply's state means, and the VPC as
//! its connection Secret describes it (values read, never logged).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use super::State;
use super::status::Vpc;
use crate::api::{CAPTCluster, WorkspaceTemplateApply};
use crate::error::Result;
use crate::render::vpc;
use crate::status::apply::{ChildState, child_state};
use crate::status::reason::{self, VPC_CREATING, VPC_CREATION_FAILED, WAITING_FOR_CONNECTION};

/// What the VPC apply's state means for the CAPTCluster; reads the connection Secret (values
/// `vpc_id` and `availability_zones`, never logged) once the apply is ready.
pub(super) async fn observe_vpc(
    c: &CAPTCluster,
    state: &State,
    apply: Option<&WorkspaceTemplateApply>,
) -> Result<Vpc> {
    let Some(apply) = apply else {
        return Ok(Vpc::NotReady {
            reason: VPC_CREATING.into(),
            message: format!(
                "creating WorkspaceTemplateApply {} for the VPC",
                vpc::apply_name(c)
            ),
        });
    };
    match child_state(apply) {
        ChildState::Ready => {}
        ChildState::Creating { reason, message } => {
            let message = if message.is_empty() {
                format!(
                    "waiting for the VPC workspace {} to be applied ({reason})",
                    apply.name_any()
                )
            } else {
                message
            };
            return Ok(Vpc::NotReady {
                reason: VPC_CREATING.into(),
                message,
            });
        }
        ChildState::Failed { message, .. } => {
            return Ok(Vpc::NotReady {
                reason: VPC_CREATION_FAILED.into(),
                message: format!("the VPC workspace {} failed: {message}", apply.name_any()),
            });
        }
        ChildState::Deleting(_) => {
            return Ok(Vpc::NotReady {
                reason: reason::DELETING.into(),
                message: format!("the VPC workspace {} is being deleted", apply.name_any()),
            });
        }
    }
    let ns = vpc::namespace(c);
    let secret_name = vpc::connection_secret(c);
    // The shared Secret cache keeps a VPC connection secret's public values (`vpc_id`,
    // `availability_zones`) and its key names; the Secret is read only when the cache cannot
    // tell (out of scope, or not complete there yet: its event may come after the apply's).
    let cached = secret_name
        .ends_with(crate::names::VPC_CONNECTION_SUFFIX)
        .then(|| state.secrets.get_named(Some(&ns), &secret_name))
        .flatten()
        .filter(|s| state.ctx.in_scope(&ns) && has_connection_keys(s));
    let secret = match cached {
        Some(secret) => Some(std::sync::Arc::unwrap_or_clone(secret)),
        None => {
            Api::<Secret>::namespaced(state.ctx.client.clone(), &ns)
                .get_opt(&secret_name)
                .await?
        }
    };
    let data: BTreeMap<String, Vec<u8>> = secret
        .and_then(|s| s.data)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    Ok(vpc_from_secret(
        &ns,
        &secret_name,
        &data,
        vpc::existing_vpc_id(c),
    ))
}

/// Whether `secret` has every key of a VPC connection secret (`vpc::CONNECTION_KEYS`).
fn has_connection_keys(secret: &Secret) -> bool {
    let data = secret.data.as_ref();
    vpc::CONNECTION_KEYS
        .iter()
        .all(|k| data.is_some_and(|d| d.contains_key(*k)))
}

/// The VPC as its connection Secret describes it (`data`: key → value), or what it lacks.
/// An existing VPC is reported by the ID the spec names.
fn vpc_from_secret(
    namespace: &str,
    name: &str,
    data: &BTreeMap<String, Vec<u8>>,
    existing: Option<&str>,
) -> Vpc {
    let missing: Vec<&str> = vpc::CONNECTION_KEYS
        .iter()
        .copied()
        .filter(|k| !data.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Vpc::NotReady {
            reason: WAITING_FOR_CONNECTION.into(),
            message: format!(
                "the VPC workspace is applied but Secret {namespace}/{name} lacks keys {}",
                missing.join(", ")
            ),
        };
    }
    let vpc_id = existing
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(&data["vpc_id"]).trim().to_string());
    // provider-terraform writes a list output as JSON. Optional: a VPC template of one's own
    // may not output the zones.
    let zones = data
        .get("availability_zones")
        .and_then(|z| serde_json::from_slice::<Vec<String>>(z).ok())
        .unwrap_or_default();
    Vpc::Ready { vpc_id, zones }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_gives_the_vpc_id_and_its_zones_or_says_what_it_lacks() {
        let mut data = BTreeMap::from([
            ("vpc_config".to_string(), b"vpc_id = \"x\"".to_vec()),
            ("vpc_id".to_string(), b"vpc-0123abcd".to_vec()),
        ]);
        assert_eq!(
            vpc_from_secret("ns", "demo-vpc-connection", &BTreeMap::new(), None),
            Vpc::NotReady {
                reason: WAITING_FOR_CONNECTION.into(),
                message: "the VPC workspace is applied but Secret ns/demo-vpc-connection lacks keys vpc_config, vpc_id".into(),
            }
        );
        // The zones are optional: a VPC template of one's own may not output them.
        assert_eq!(
            vpc_from_secret("ns", "s", &data, None),
            Vpc::Ready {
                vpc_id: "vpc-0123abcd".into(),
                zones: vec![]
            }
        );
        data.insert(
            "availability_zones".into(),
            br#"["ap-northeast-1a","ap-northeast-1c"]"#.to_vec(),
        );
        assert_eq!(
            vpc_from_secret("ns", "demo-vpc-connection", &data, None),
            Vpc::Ready {
                vpc_id: "vpc-0123abcd".into(),
                zones: vec!["ap-northeast-1a".into(), "ap-northeast-1c".into()],
            }
        );
        assert!(matches!(
            vpc_from_secret("ns", "s", &data, Some("vpc-0fedcba9")),
            Vpc::Ready { vpc_id, .. } if vpc_id == "vpc-0fedcba9"
        ));
    }
}
