//! The API server's audit log (`tests/cluster/up` logs every write, none of the reads) and
//! client certificates for users of one's own, so that a test can count every write a process
//! made by verb and resource, including writes that changed nothing and so left no trace in a
//! watch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::jiff::Timestamp;
use kube::config::Kubeconfig;

/// One write request, as the audit log records it (stage ResponseComplete).
#[derive(Clone, Debug)]
pub struct Write {
    /// `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: String,
    /// The authenticated user name (the certificate's CN).
    pub user: String,
    /// Plural resource name, e.g. `captcontrolplanes`; empty for non-resource URLs.
    pub resource: String,
    /// e.g. `status`; empty for the object itself.
    pub subresource: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    /// Object name (empty for a create whose name the server generates).
    pub name: String,
    /// HTTP status code of the response.
    pub code: u16,
    /// When the API server received the request.
    pub received: Timestamp,
}

impl Write {
    /// `resource` or `resource/subresource`.
    pub fn kind(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// Whether the API server accepted it (a rejected request changed nothing).
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

/// The audit log from the moment [`AuditLog::open`] was called.
pub struct AuditLog {
    path: PathBuf,
    offset: u64,
}

impl AuditLog {
    /// The running test cluster's audit log, read from its current end on.
    pub async fn open() -> AuditLog {
        Self::open_for(&super::cluster::kubeconfig().await)
    }

    /// The audit log of the control plane whose admin kubeconfig is `kubeconfig` (one
    /// tests/cluster/up started, e.g. a management cluster of tests/capi/up), from its end on.
    pub fn open_for(kubeconfig: &Path) -> AuditLog {
        let path = kubeconfig
            .parent()
            .expect("the kubeconfig lives in the cluster's directory")
            .join("logs/audit.log");
        let offset = std::fs::metadata(&path)
            .unwrap_or_else(|e| {
                panic!(
                    "no audit log at {} ({e}): the test cluster was started without one; restart it with tests/cluster/down && tests/cluster/up",
                    path.display()
                )
            })
            .len();
        AuditLog { path, offset }
    }

    /// Every write logged since `open`, in the order the API server finished them. A line still
    /// being written at the end of the file is left out.
    pub fn writes(&self) -> Vec<Write> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = std::fs::File::open(&self.path).unwrap();
        file.seek(SeekFrom::Start(self.offset)).unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .filter_map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).ok()?;
                let s = |p: &str| {
                    v.pointer(p)
                        .and_then(|x| x.as_str())
                        .unwrap_or("")
                        .to_string()
                };
                Some(Write {
                    verb: s("/verb"),
                    user: s("/user/username"),
                    resource: s("/objectRef/resource"),
                    subresource: s("/objectRef/subresource"),
                    namespace: s("/objectRef/namespace"),
                    name: s("/objectRef/name"),
                    code: v.pointer("/responseStatus/code")?.as_u64()? as u16,
                    received: s("/requestReceivedTimestamp").parse().ok()?,
                })
            })
            .filter(|w| w.verb != "get" && w.verb != "list" && w.verb != "watch")
            .collect()
    }
}

/// Writes counted by (verb, resource[/subresource]), for messages and reports.
pub fn count(writes: &[Write]) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for w in writes {
        *counts.entry((w.verb.clone(), w.kind())).or_default() += 1;
    }
    counts
}

/// A kubeconfig of the test cluster for `user`, a member of `system:masters` (so RBAC allows
/// everything) whose requests the audit log names `user`. `server` replaces the API server's
/// address (e.g. a proxy in front of it). Written next to the cluster's certificates, which
/// `tests/cluster/down` deletes.
pub async fn kubeconfig_for_user(user: &str, server: Option<&str>) -> PathBuf {
    let admin = super::cluster::kubeconfig().await;
    let pki = admin.parent().unwrap().join("pki");
    let (key, cert) = (
        pki.join(format!("user-{user}.key")),
        pki.join(format!("user-{user}.crt")),
    );
    let csr = pki.join(format!("user-{user}.csr"));
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let p = |p: &Path| p.to_str().unwrap().to_string();
    let subject = format!("/O=system:masters/CN={user}");
    // A serial of its own: `-CAcreateserial` would share one serial file between tests.
    let serial = format!("{}", super::rand_u32() as u64 + 2);
    run(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &p(&key),
    ]);
    run(&[
        "req",
        "-new",
        "-key",
        &p(&key),
        "-subj",
        &subject,
        "-out",
        &p(&csr),
    ]);
    // Extensions make it an X.509 v3 certificate, which rustls requires.
    let ext = pki.join(format!("user-{user}.ext"));
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &p(&pki.join("ca.crt")),
        "-CAkey",
        &p(&pki.join("ca.key")),
        "-set_serial",
        &serial,
        "-days",
        "2",
        "-extfile",
        &p(&ext),
        "-out",
        &p(&cert),
    ]);
    let _ = std::fs::remove_file(&csr);
    let _ = std::fs::remove_file(&ext);
    let mut config = Kubeconfig::read_from(&admin).unwrap();
    for auth in &mut config.auth_infos {
        let info = auth.auth_info.as_mut().unwrap();
        info.client_certificate_data = None;
        info.client_key_data = None;
        info.client_certificate = Some(p(&cert));
        info.client_key = Some(p(&key));
    }
    if let Some(server) = server {
        for cluster in &mut config.clusters {
            cluster.cluster.as_mut().unwrap().server = Some(server.to_string());
        }
    }
    let path = pki.join(format!("user-{user}.kubeconfig"));
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    path
}
