//! The apply controller's decision tree as a pure function: from what a reconcile observed
//! ([`Observed`]) to the one thing it does ([`Step`]). What costs a request to observe (a
//! template or Secret outside the operator's watches is read with a GET) is read only when
//! [`decide`] asks for it ([`Step::Look`]), so a reconcile reads nothing it does not use.

use std::time::Duration;

use kube::ResourceExt;

use super::owned_by;
use crate::api::{Workspace, WorkspaceTemplateApply};
use crate::names;
use crate::status::{pacing, reason};

/// What a reconcile knows of an apply and its Workspace.
pub(super) struct Observed<'a> {
    /// The apply, as this process last wrote or saw it.
    pub apply: &'a WorkspaceTemplateApply,
    /// Name of its Workspace ([`workspace_name_of`]).
    pub ws_name: &'a str,
    /// The Workspace of that name, whoever created it.
    pub existing: Option<&'a Workspace>,
    /// How long ago that Workspace was created, by this machine's clock.
    pub workspace_age: Option<Duration>,
    /// The Workspace the template renders; None until [`Lookup::Desired`] read it.
    pub desired: Option<Desired>,
    /// What a write needs; None until [`Lookup::Prerequisites`] read it.
    pub prerequisites: Option<Prerequisites>,
}

/// The Workspace an apply's template renders.
#[derive(Debug)]
pub(super) enum Desired {
    /// The WorkspaceTemplate does not exist.
    NoTemplate,
    /// The template does not render; why.
    Invalid(String),
    /// The rendered Workspace (stamped for the write path), and the hash of its spec when the
    /// existing Workspace already holds it (then nothing is to be written).
    Rendered {
        /// The Workspace to write (boxed: a Workspace is large, the other variants small).
        workspace: Box<Workspace>,
        /// `Some(spec hash)` when the existing Workspace holds `workspace`.
        held: Option<String>,
    },
}

/// What must be there before a Workspace is written. Only key names of Secrets are read.
#[derive(Debug, Default)]
pub(super) struct Prerequisites {
    /// Secrets or keys of `spec.waitForSecrets` that are missing, as a message.
    pub missing_secrets: Option<String>,
    /// Workspaces of `spec.waitForWorkspaces` that are not Ready, as a message.
    pub unready_workspaces: Option<String>,
}

/// What [`decide`] needs read before it can decide.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Lookup {
    /// The template, rendered ([`Observed::desired`]).
    Desired,
    /// The Secrets and Workspaces a write waits for ([`Observed::prerequisites`]).
    Prerequisites,
}

/// The one thing a reconcile does.
#[derive(Debug)]
pub(super) enum Step<'a> {
    /// Read this, then decide again.
    Look(Lookup),
    /// The apply is deleted and its Workspace kept as asked (`retainWorkspaceOnDelete`): say
    /// so and release the finalizer.
    Retain,
    /// The apply is deleted and it has no Workspace (left): release the finalizer.
    Release,
    /// The apply is deleted: delete its Workspace, then report its destroy.
    DeleteWorkspace,
    /// The apply's Workspace is being destroyed: report its progress and errors (its deletion
    /// brings the apply back).
    AwaitDeletion,
    /// An error the user has to fix; the Workspace, if any, is left as it is.
    Blocked {
        /// Condition reason.
        reason: &'static str,
        /// What to fix.
        message: String,
    },
    /// The template is gone after the Workspace was applied: the Workspace keeps working,
    /// frozen; warn and report it.
    TemplateGone {
        /// What is missing.
        message: String,
    },
    /// Wait for something a watch will announce.
    Wait {
        /// Condition reason.
        reason: &'static str,
        /// What is awaited.
        message: String,
    },
    /// Wait this long for the provider's first report on a new Workspace, so that its answer
    /// goes out in the apply's first status write (`pacing::FIRST_REPORT_GRACE`).
    AwaitFirstReport(Duration),
    /// Report the Workspace; `applied` is the hash of its spec when it holds the desired one.
    Report {
        /// Hash of the applied spec, if it is the desired one.
        applied: Option<String>,
    },
    /// Write `workspace`: create it (`create`), or update the existing one.
    Write {
        /// The desired Workspace.
        workspace: &'a Workspace,
        /// Whether there is none yet.
        create: bool,
    },
}

/// The decision tree of the apply controller, from what was observed.
pub(super) fn decide<'a>(o: &'a Observed<'_>) -> Step<'a> {
    let apply = o.apply;
    if apply.metadata.deletion_timestamp.is_some() {
        return decide_deletion(o);
    }
    if let Some(ws) = o.existing.filter(|ws| !owned_by(ws, apply)) {
        return Step::Blocked {
            reason: reason::WORKSPACE_CONFLICT,
            message: conflict_message(ws, o.ws_name),
        };
    }
    let (workspace, held) = match &o.desired {
        None => return Step::Look(Lookup::Desired),
        Some(Desired::NoTemplate) => return template_absent(o),
        Some(Desired::Invalid(message)) => {
            return Step::Blocked {
                reason: reason::INVALID_TEMPLATE,
                message: message.clone(),
            };
        }
        Some(Desired::Rendered { workspace, held }) => (workspace, held),
    };
    // A Workspace of an earlier incarnation of this apply is still being destroyed.
    if o.existing
        .is_some_and(|ws| ws.metadata.deletion_timestamp.is_some())
    {
        return Step::Wait {
            reason: reason::CREATING,
            message: format!(
                "waiting for the previous Workspace {} to be deleted",
                o.ws_name
            ),
        };
    }
    if let (Some(ws), Some(hash)) = (o.existing, held) {
        return match awaiting_first_report(apply, ws, o.workspace_age) {
            Some(wait) => Step::AwaitFirstReport(wait),
            None => Step::Report {
                applied: Some(hash.clone()),
            },
        };
    }
    // A write is due; what it needs is checked now.
    let Some(prerequisites) = &o.prerequisites else {
        return Step::Look(Lookup::Prerequisites);
    };
    if let Some(message) = &prerequisites.missing_secrets {
        // An existing Workspace keeps being reported; it is updated once they are back.
        return match o.existing {
            Some(_) => Step::Report { applied: None },
            None => Step::Wait {
                reason: reason::WAITING_FOR_SECRETS,
                message: message.clone(),
            },
        };
    }
    if o.existing.is_none()
        && let Some(message) = &prerequisites.unready_workspaces
    {
        return Step::Wait {
            reason: reason::WAITING_FOR_WORKSPACES,
            message: message.clone(),
        };
    }
    Step::Write {
        workspace,
        create: o.existing.is_none(),
    }
}

/// What a deleted apply does: its Workspace is destroyed (unless retained) before the
/// finalizer is released, so Terraform's destroy has finished when the apply disappears.
fn decide_deletion<'a>(o: &'a Observed<'_>) -> Step<'a> {
    if o.apply.spec.retain_workspace_on_delete == Some(true) {
        return Step::Retain;
    }
    // Others still read its connection Secret when they are destroyed (a VPC while control
    // planes of its cluster exist): its holder releases it when they are gone.
    if o.apply
        .finalizers()
        .iter()
        .any(|f| f == names::IN_USE_FINALIZER)
    {
        return Step::Wait {
            reason: reason::IN_USE,
            message: format!(
                "destroy waits until what reads this apply's outputs is gone ({} is held)",
                names::IN_USE_FINALIZER
            ),
        };
    }
    let released = o
        .apply
        .annotations()
        .contains_key(names::RELEASED_ANNOTATION);
    match o.existing.filter(|ws| owned_by(ws, o.apply)) {
        // Created again to destroy a handed-over state: deleted before the provider took it
        // (its finalizer), it would vanish without a destroy.
        Some(ws) if released && ws.finalizers().is_empty() => Step::Wait {
            reason: reason::DELETING,
            message: format!(
                "waiting for provider-terraform to take Workspace {} before destroying it",
                o.ws_name
            ),
        },
        Some(ws) if ws.metadata.deletion_timestamp.is_none() => Step::DeleteWorkspace,
        Some(_) => Step::AwaitDeletion,
        // Handed over while paused: its state still holds what it made. Create the
        // Workspace again (it finds the state) and destroy it then.
        None if released => match &o.desired {
            None => Step::Look(Lookup::Desired),
            Some(Desired::Rendered { workspace, .. }) => Step::Write {
                workspace,
                create: true,
            },
            Some(_) => Step::Blocked {
                reason: reason::TEMPLATE_NOT_FOUND,
                message: format!(
                    "the Workspace {} was handed over while paused and cannot be created again to destroy it: its template does not render",
                    o.ws_name
                ),
            },
        },
        None => Step::Release,
    }
}

/// Why the Workspace name is taken by a Workspace that is not this apply's.
fn conflict_message(ws: &Workspace, ws_name: &str) -> String {
    match ws.annotations().get(names::ANNOTATION_APPLY) {
        Some(owner) => {
            format!("Workspace {ws_name} already belongs to WorkspaceTemplateApply {owner}")
        }
        None => format!(
            "Workspace {ws_name} exists and was not created by this operator; delete or rename it"
        ),
    }
}

/// The template is missing. An applied Workspace keeps working without it: it is only frozen,
/// which is a warning, not a failure of what already exists.
fn template_absent<'a>(o: &Observed<'_>) -> Step<'a> {
    let apply = o.apply;
    let message = format!(
        "WorkspaceTemplate {}/{} not found; create it or fix spec.templateRef",
        apply.template_namespace(),
        apply.spec.template_ref.name
    );
    let status_current = apply
        .status
        .as_ref()
        .is_some_and(|s| s.observed_generation == apply.metadata.generation);
    if o.existing.is_some() && status_current {
        return Step::TemplateGone { message };
    }
    Step::Blocked {
        reason: reason::TEMPLATE_NOT_FOUND,
        message,
    }
}

/// When an apply that has reported nothing yet has a new Workspace the provider has said
/// nothing of but "creating" (`workspace_has_news`), how long to wait for more
/// (`pacing::FIRST_REPORT_GRACE`): a provider that finishes within it gets its answer reported
/// in one status write; one that takes longer has "creating" reported when the grace is over.
fn awaiting_first_report(
    apply: &WorkspaceTemplateApply,
    ws: &Workspace,
    age: Option<Duration>,
) -> Option<Duration> {
    let reported = apply
        .status
        .as_ref()
        .is_some_and(|s| !s.conditions.is_empty())
        || crate::status::apply::workspace_has_news(ws);
    pacing::first_report_wait(reported, age?)
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
