//! `render`: the WorkspaceTemplateApplies for a CAPTControlPlane manifest, offline.

use std::path::Path;

use crate::api::CAPTControlPlane;

/// Why a manifest could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read {0}: {1}")]
    Read(String, #[source] std::io::Error),
    /// The file (named first) is not a CAPTControlPlane.
    #[error("{0} is not a valid CAPTControlPlane manifest: {1}")]
    Parse(String, #[source] Box<serde_saphyr::DeserializeError>),
    /// A rendered apply could not be written as YAML (a bug: the types always serialise).
    #[error("could not write the rendered applies as YAML: {0}")]
    Emit(#[source] Box<serde_saphyr::SerializeError>),
}

/// Renders every apply for the control plane in `yaml` as a multi-document YAML stream; a
/// parse error names the input `input` (see [`render_file`] for a file's name).
pub fn render_str(yaml: &str, default_namespace: &str) -> Result<String, ManifestError> {
    let mut cp: CAPTControlPlane = serde_saphyr::from_str(yaml)
        .map_err(|e| ManifestError::Parse("input".into(), Box::new(e)))?;
    if cp.metadata.namespace.is_none() {
        cp.metadata.namespace = Some(default_namespace.to_string());
    }
    // Offline there is no uid; a placeholder lets the owner reference render.
    if cp.metadata.uid.is_none() {
        cp.metadata.uid = Some("00000000-0000-0000-0000-000000000000".into());
    }
    let mut applies = vec![super::eks::render(&cp)];
    for profile in cp.spec.additional_fargate_profiles.iter().flatten() {
        applies.push(super::fargate::render(&cp, profile));
    }
    let mut out = String::new();
    for apply in applies {
        let yaml = serde_saphyr::to_string(&apply).map_err(|e| ManifestError::Emit(Box::new(e)))?;
        out.push_str("---\n");
        out.push_str(&yaml);
    }
    Ok(out)
}

/// Reads `path` (`-` for standard input) and renders it.
pub fn render_file(path: &Path, default_namespace: &str) -> Result<String, ManifestError> {
    let name = path.display().to_string();
    let text = if name == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| ManifestError::Read(name.clone(), e))?
    } else {
        std::fs::read_to_string(path).map_err(|e| ManifestError::Read(name.clone(), e))?
    };
    render_str(&text, default_namespace).map_err(|e| match e {
        ManifestError::Parse(_, e) => ManifestError::Parse(name, e),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_the_cluster_apply_and_one_apply_per_profile() {
        let yaml = super::render_str(
            r#"
apiVersion: controlplane.cluster.x-k8s.io/v1beta1
kind: CAPTControlPlane
metadata: { name: demo }
spec:
  version: "1.31"
  workspaceTemplateRef: { name: eks }
  additionalFargateProfiles:
    - name: monitoring
      workspaceTemplateRef: { name: fp }
      selectors: [{ namespace: monitoring }]
"#,
            "team-a",
        )
        .unwrap();
        assert_eq!(
            yaml.matches("kind: WorkspaceTemplateApply").count(),
            2,
            "{yaml}"
        );
        assert!(yaml.contains("name: demo-eks-controlplane-apply"));
        assert!(yaml.contains("name: demo-fargate-monitoring"));
        assert!(yaml.contains("namespace: team-a"));
        // terraformVariables are written as YAML values, not as the JSON text they are kept in.
        assert!(
            yaml.contains("    selectors:\n    - labels: {}\n      namespace: monitoring\n"),
            "{yaml}"
        );
    }

    #[test]
    fn a_manifest_of_another_kind_is_rejected() {
        let error = super::render_str("kind: Pod\nmetadata: {name: x}\nspec: {}\n", "d")
            .expect_err("a Pod is not a control plane");
        assert!(
            matches!(error, super::ManifestError::Parse(..)),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .starts_with("input is not a valid CAPTControlPlane manifest: "),
            "{error}"
        );
    }
}
