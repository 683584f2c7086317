//! Step 2 of a control plane's reconcile: every child it wants, rendered once (`render::eks`,
//! `render::fargate`), with what the plan needs to know of them.

use kube::ResourceExt;

use super::State;
use super::observe::Observed;
use crate::api::{CAPTControlPlane, FargateProfile, WorkspaceTemplateApply};
use crate::error::Result;
use crate::names;
use crate::render::{self, eks, fargate};
use crate::runtime::write;
use crate::status::profiles::DesiredProfile;

/// The children a live control plane wants.
pub(super) struct Desired {
    /// The EKS cluster apply, with the default profiles in its Terraform input.
    pub eks: WorkspaceTemplateApply,
    /// Whether writing [`Desired::eks`] would change the existing EKS apply (a pure removal
    /// included, `write::would_change`); false when there is none.
    pub eks_changed: bool,
    /// The additional profiles as the plan sees them, in spec order.
    pub profiles: Vec<DesiredProfile>,
    /// Their applies, rendered, in the same order.
    pub profile_applies: Vec<WorkspaceTemplateApply>,
}

/// Renders the children of `cp` (observed as `observed`) for the operator of `state`.
pub(super) fn desire(cp: &CAPTControlPlane, state: &State, observed: &Observed) -> Result<Desired> {
    let eks = eks::render_with(cp, &state.ctx.operator_role_arn);
    let eks_changed = match observed.eks.as_deref() {
        Some(existing) => write::would_change(&state.applies, existing, &eks)?,
        None => false,
    };
    let spec = cp
        .spec
        .additional_fargate_profiles
        .clone()
        .unwrap_or_default();
    let profiles = desired_profiles(cp, &spec, observed);
    // The Workspace the EKS apply reports, which an earlier naming rule may have named.
    let eks_workspace = observed
        .eks
        .as_deref()
        .map(crate::controller::workspace_apply::workspace_name_of)
        .unwrap_or_else(|| names::workspace_name(&render::namespace(cp), &observed.eks_name));
    let profile_applies = spec
        .iter()
        .zip(&profiles)
        .map(|(p, d)| fargate::render_as(cp, p, &d.apply_name, &eks_workspace))
        .collect();
    Ok(Desired {
        eks,
        eks_changed,
        profiles,
        profile_applies,
    })
}

/// The additional profiles of `spec` as the plan sees them: name, apply name and the hash of
/// what AWS cannot change. A profile that already has an apply among the observed keeps it
/// under its name (see `names::profile_apply_name_in_use`): renaming it would create the
/// profile again.
fn desired_profiles(
    cp: &CAPTControlPlane,
    spec: &[FargateProfile],
    observed: &Observed,
) -> Vec<DesiredProfile> {
    let owned_names: Vec<(&str, &str)> = observed
        .profile_applies
        .iter()
        .filter_map(|a| {
            let profile = a.annotations().get(names::ANNOTATION_PROFILE_NAME)?;
            Some((profile.as_str(), a.metadata.name.as_deref()?))
        })
        .collect();
    spec.iter()
        .map(|p| DesiredProfile {
            name: p.name.clone(),
            apply_name: names::profile_apply_name_in_use(
                &p.name,
                names::profile_apply_name(&cp.name_any(), &p.name),
                owned_names.iter().copied(),
            ),
            hash: fargate::immutable_hash(cp, p),
        })
        .collect()
}
