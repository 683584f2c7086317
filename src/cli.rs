//! Command line: `run` the controllers, print the `crds`, or `render` a manifest offline.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Manages Amazon EKS Fargate profiles for CAPT through Terraform workspaces.
#[derive(Parser, Debug)]
#[command(name = "capt-fargate", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the CAPTControlPlane and WorkspaceTemplateApply controllers.
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML, or write one file each into a directory.
    Crds {
        /// Write `<group>_<plural>.yaml` files here instead of printing.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print the WorkspaceTemplateApplies the controller would create for a CAPTControlPlane
    /// manifest, without a cluster.
    Render {
        /// CAPTControlPlane manifest (YAML); `-` reads standard input.
        file: PathBuf,
        /// Namespace to assume when the manifest has none.
        #[arg(long, default_value = "default")]
        namespace: String,
    },
}

/// Log output format.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// Options of `run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Kubeconfig file; without it, in-cluster config or $KUBECONFIG is used.
    #[arg(long, env = "KUBECONFIG_PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Reconcile only CAPTControlPlanes and WorkspaceTemplateApplies labelled
    /// `cluster.x-k8s.io/watch-filter=<value>` (Cluster API's watch filter; default: all).
    /// The applies a control plane creates inherit its label.
    #[arg(long, env = "WATCH_FILTER", value_parser = parse_label_value)]
    pub watch_filter: Option<String>,
    /// Address of the /metrics endpoint.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Address of the /healthz and /readyz endpoints.
    #[arg(long, env = "HEALTH_ADDR", default_value = "0.0.0.0:8081")]
    pub health_addr: SocketAddr,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `capt_fargate=debug,kube=info`.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_level: String,
    /// Elect a leader among replicas with a coordination.k8s.io Lease.
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Name of the leader election Lease.
    #[arg(
        long,
        env = "LEADER_ELECTION_LEASE",
        default_value = "capt-fargate-leader"
    )]
    pub lease_name: String,
    /// Namespace of the Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Seconds a lease is valid without renewal.
    #[arg(long, env = "LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Identity of this replica (default: the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Tokio worker threads. The operator mostly waits for the API server: at 200 control
    /// planes × 10 profiles (`tests/bench`) it used about a sixth of a CPU. One (the default)
    /// runs everything on a single thread (tokio's current-thread scheduler), which spends
    /// the least CPU on threads parking and waking each other; more spread reconciles over a
    /// worker pool, where the system allocator (glibc's malloc, see `src/main.rs`) took about
    /// half of the operator's CPU when it was measured.
    #[arg(long, env = "WORKER_THREADS", default_value = "1")]
    pub worker_threads: std::num::NonZeroUsize,
    /// Reconciles each controller runs at once. A reconcile mostly waits for the API server,
    /// which serves a few dozen requests at a time as fast as hundreds; more only open more
    /// connections to it.
    #[arg(long, env = "MAX_CONCURRENT_RECONCILES", default_value_t = std::num::NonZeroU16::new(crate::controller::DEFAULT_MAX_CONCURRENT_RECONCILES).expect("not zero"))]
    pub max_concurrent_reconciles: std::num::NonZeroU16,
    /// Requests of the controllers waiting for the API server's answer at once, for all of them
    /// together; more wait their turn (the Lease's renewals never do). A request holds its place
    /// until its response headers arrive, so a watch, or a list still streaming its body, gives
    /// it back. kube-client speaks HTTP/1.1 only: every request in flight takes a connection of
    /// its own (TLS state and buffers, about 45 KB), and at 200 control planes × 8 profiles the
    /// operator held about 130 at once without a cap (heaptrack, BENCHMARKS.md), while the API
    /// server serves a few dozen at a time as fast.
    #[arg(long, env = "MAX_REQUESTS_IN_FLIGHT", default_value = "32")]
    pub max_requests_in_flight: std::num::NonZeroU16,
    /// IAM role ARN the operator runs as (IRSA or EKS Pod Identity). Each EKS cluster's module
    /// grants it an access entry with cluster admin, so that the token of the
    /// `<cluster>-kubeconfig` Secret, minted with this role, is accepted.
    #[arg(long, env = "OPERATOR_ROLE_ARN", default_value = "")]
    pub operator_role_arn: String,
    /// TEST ONLY: put the (trimmed) content of this file, read at each write, into every
    /// `<cluster>-kubeconfig` Secret as its bearer token instead of an EKS IAM token minted
    /// with the operator's AWS credentials. For test setups whose "EKS cluster" is a local API
    /// server; production never sets it (such a token is bound to no cluster and is never
    /// refreshed).
    #[arg(long, env = "CAPT_FARGATE_TEST_ONLY_STATIC_TOKEN_FILE", hide = true)]
    pub test_only_static_token_file: Option<PathBuf>,
}

/// A `--watch-filter` value that is not a Kubernetes label value.
#[derive(Debug, thiserror::Error)]
#[error(
    "{0:?} is not a label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
)]
pub struct InvalidLabelValue(String);

/// A label value as Kubernetes accepts it: at most 63 characters, alphanumerics, '-', '_'
/// and '.', starting and ending with an alphanumeric.
fn parse_label_value(value: &str) -> Result<String, InvalidLabelValue> {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let valid = !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && edge_ok(value.chars().next())
        && edge_ok(value.chars().last());
    if valid {
        Ok(value.to_string())
    } else {
        Err(InvalidLabelValue(value.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let cli = Cli::try_parse_from(["capt-fargate", "run"].iter().chain(args))?;
        match cli.command {
            Command::Run(args) => Ok(*args),
            _ => unreachable!("parsed the run command"),
        }
    }

    #[test]
    fn the_watch_filter_is_a_label_value() {
        assert_eq!(run_args(&[]).unwrap().watch_filter, None);
        let filter = run_args(&["--watch-filter", "team-a"])
            .unwrap()
            .watch_filter;
        assert_eq!(filter.as_deref(), Some("team-a"));
        for bad in ["", "a b", "a-", "a=b", &"x".repeat(64)] {
            let err = run_args(&[&format!("--watch-filter={bad}")]).unwrap_err();
            assert!(
                err.to_string().contains("not a label value"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn one_worker_thread_unless_told_and_never_zero() {
        assert_eq!(run_args(&[]).unwrap().worker_threads.get(), 1);
        assert_eq!(
            run_args(&["--worker-threads", "4"])
                .unwrap()
                .worker_threads
                .get(),
            4
        );
        let err = run_args(&["--worker-threads", "0"]).unwrap_err();
        assert!(err.to_string().contains("--worker-threads"), "{err}");
    }

    #[test]
    fn thirty_two_requests_in_flight_unless_told_and_never_zero() {
        let in_flight = |args: &[&str]| run_args(args).map(|a| a.max_requests_in_flight.get());
        assert!(in_flight(&["--max-requests-in-flight", "100000"]).is_err());
        assert_eq!(in_flight(&[]).unwrap(), 32);
        assert_eq!(
            in_flight(&["--max-requests-in-flight", "100"]).unwrap(),
            100
        );
        let err = in_flight(&["--max-requests-in-flight", "0"]).unwrap_err();
        assert!(
            err.to_string().contains("--max-requests-in-flight"),
            "{err}"
        );
    }

    #[test]
    fn sixty_four_concurrent_reconciles_unless_told_and_never_zero() {
        let concurrency = |args: &[&str]| run_args(args).map(|a| a.max_concurrent_reconciles.get());
        assert_eq!(concurrency(&[]).unwrap(), 64);
        assert_eq!(
            concurrency(&["--max-concurrent-reconciles", "8"]).unwrap(),
            8
        );
        let err = concurrency(&["--max-concurrent-reconciles", "0"]).unwrap_err();
        assert!(
            err.to_string().contains("--max-concurrent-reconciles"),
            "{err}"
        );
    }
}
