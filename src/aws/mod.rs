//! What the operator itself asks of AWS: the EKS IAM token of the kubeconfig Secrets.

pub mod token;
