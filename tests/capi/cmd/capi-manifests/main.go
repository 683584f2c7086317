// Command capi-manifests prints the Cluster API core CRDs and webhook
// configurations of the pinned release, rewritten for a manager that runs on
// the host: every conversion and admission webhook is reached at
// https://127.0.0.1:PORT/<path> with the given CA bundle, since the test
// control plane has no kubelet, Pods or Services.
//
// Usage: capi-manifests -config DIR -port PORT -ca-file CA.crt > manifests.yaml
// DIR is the release's core/config directory in the Go module cache.
package main

import (
	"bytes"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

func main() {
	config := flag.String("config", "", "core/config directory of the Cluster API release")
	port := flag.Int("port", 0, "webhook port of the manager on 127.0.0.1")
	caFile := flag.String("ca-file", "", "PEM CA that signed the manager's serving certificate")
	flag.Parse()
	if *config == "" || *port == 0 || *caFile == "" {
		fail("-config, -port and -ca-file are required")
	}
	ca, err := os.ReadFile(*caFile)
	if err != nil {
		fail("reading the CA: %v", err)
	}
	base := fmt.Sprintf("https://127.0.0.1:%d", *port)
	bundle := base64.StdEncoding.EncodeToString(ca)

	crds, err := filepath.Glob(filepath.Join(*config, "crd", "bases", "*.yaml"))
	if err != nil || len(crds) == 0 {
		fail("no CRDs under %s/crd/bases (is the module downloaded?)", *config)
	}
	sort.Strings(crds)
	var out bytes.Buffer
	for _, file := range crds {
		for _, doc := range documents(file) {
			spec := doc["spec"].(map[string]any)
			// Only multi-version CRDs need conversion; CAPI enables it on all of them.
			if versions, _ := spec["versions"].([]any); len(versions) > 1 {
				spec["conversion"] = map[string]any{
					"strategy": "Webhook",
					"webhook": map[string]any{
						"conversionReviewVersions": []any{"v1"},
						"clientConfig":             map[string]any{"url": base + "/convert", "caBundle": bundle},
					},
				}
			}
			emit(&out, doc)
		}
	}
	for _, doc := range documents(filepath.Join(*config, "webhook", "manifests.yaml")) {
		meta := doc["metadata"].(map[string]any)
		meta["name"] = "capi-" + meta["name"].(string)
		for _, w := range doc["webhooks"].([]any) {
			hook := w.(map[string]any)
			cc := hook["clientConfig"].(map[string]any)
			svc := cc["service"].(map[string]any)
			hook["clientConfig"] = map[string]any{"url": base + svc["path"].(string), "caBundle": bundle}
		}
		emit(&out, doc)
	}
	os.Stdout.Write(out.Bytes())
}

func documents(file string) []map[string]any {
	text, err := os.ReadFile(file)
	if err != nil {
		fail("reading %s: %v", file, err)
	}
	var docs []map[string]any
	for _, part := range strings.Split(string(text), "\n---") {
		if strings.TrimSpace(strings.TrimPrefix(part, "---")) == "" {
			continue
		}
		var doc map[string]any
		if err := yaml.Unmarshal([]byte(part), &doc); err != nil {
			fail("parsing %s: %v", file, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
	return docs
}

func emit(out *bytes.Buffer, doc map[string]any) {
	text, err := yaml.Marshal(doc)
	if err != nil {
		fail("encoding: %v", err)
	}
	out.WriteString("---\n")
	out.Write(text)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "capi-manifests: "+format+"\n", args...)
	os.Exit(1)
}
