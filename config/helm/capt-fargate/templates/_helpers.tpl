{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "capt-fargate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: fullnameOverride, else the release name (with the chart name unless it already has it). */}}
{{- define "capt-fargate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "capt-fargate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "capt-fargate.labels" -}}
helm.sh/chart: {{ include "capt-fargate.chart" . }}
{{ include "capt-fargate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: capt
{{- end }}

{{- define "capt-fargate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "capt-fargate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "capt-fargate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "capt-fargate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "capt-fargate.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
RBAC rules of the operator, one rule per resource. They must equal RULES in src/rbac.rs
(tests/integration/rbac.rs compares them and runs the operator with them).
Namespaced resources: */}}
{{- define "capt-fargate.namespacedRules" -}}
- apiGroups: ["controlplane.cluster.x-k8s.io"]
  resources: ["captcontrolplanes"]
  verbs: ["get", "list", "patch", "watch"]
- apiGroups: ["controlplane.cluster.x-k8s.io"]
  resources: ["captcontrolplanes/status"]
  verbs: ["patch"]
# Owner references with blockOwnerDeletion (OwnerReferencesPermissionEnforcement).
- apiGroups: ["controlplane.cluster.x-k8s.io"]
  resources: ["captcontrolplanes/finalizers"]
  verbs: ["update"]
- apiGroups: ["infrastructure.cluster.x-k8s.io"]
  resources: ["captclusters"]
  verbs: ["get", "list", "patch", "watch"]
- apiGroups: ["infrastructure.cluster.x-k8s.io"]
  resources: ["captclusters/status"]
  verbs: ["patch"]
- apiGroups: ["infrastructure.cluster.x-k8s.io"]
  resources: ["captclusters/finalizers"]
  verbs: ["update"]
# Cluster API Clusters: read for spec.paused only (pauses their control planes and CAPTClusters).
- apiGroups: ["cluster.x-k8s.io"]
  resources: ["clusters"]
  verbs: ["get", "list", "watch"]
# Server-side apply that creates an object is authorized as both patch and create.
- apiGroups: ["infrastructure.cluster.x-k8s.io"]
  resources: ["workspacetemplateapplies"]
  verbs: ["create", "delete", "get", "list", "patch", "watch"]
- apiGroups: ["infrastructure.cluster.x-k8s.io"]
  resources: ["workspacetemplateapplies/status"]
  verbs: ["patch"]
- apiGroups: ["infrastructure.cluster.x-k8s.io"]
  resources: ["workspacetemplates"]
  verbs: ["get", "list", "watch"]
# Connection secrets: key names, and the EKS endpoint and CA (public values). Written: the
# <cluster>-kubeconfig and <cluster>-user-kubeconfig Secrets (create, then merge patches), and
# the finalizer that keeps a Secret a Workspace reads until it is destroyed (patch).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create", "get", "list", "patch", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* Cluster-scoped resources: */}}
{{- define "capt-fargate.clusterRules" -}}
- apiGroups: ["tf.upbound.io"]
  resources: ["workspaces"]
  verbs: ["create", "delete", "get", "list", "patch", "watch"]
{{- end }}

{{/* Leader election, in the release namespace only (LEADER_ELECTION_RULES in src/rbac.rs). */}}
{{- define "capt-fargate.leaderElectionRules" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["create", "get", "patch"]
{{- end }}
