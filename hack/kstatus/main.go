// Command kstatus prints the kstatus verdict (sigs.k8s.io/cli-utils
// pkg/kstatus/status.Compute) for each Kubernetes object in the YAML or JSON
// documents read from the files named as arguments, or from stdin.
//
// One line per object: KIND/NAMESPACE/NAME<TAB>STATUS<TAB>MESSAGE. This is the
// verdict that Flux (kstatus-based health checks), kpt and cli-utils' applier
// give our JuliaRunJob; the tests use it to check status.conditions follow the
// Ready/Reconciling/Stalled convention kstatus expects.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-h" || os.Args[1] == "--help") {
		fmt.Fprintln(os.Stderr, "usage: kstatus [FILE...]   (YAML/JSON objects; stdin when no FILE)")
		os.Exit(0)
	}
	inputs := os.Args[1:]
	if len(inputs) == 0 {
		inputs = []string{"-"}
	}
	failed := false
	for _, name := range inputs {
		if err := computeAll(name); err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: %s: %v\n", name, err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

func computeAll(name string) error {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	// The decoder splits on "---" and takes YAML or JSON alike.
	dec := utilyaml.NewYAMLOrJSONDecoder(bufio.NewReader(r), 4096)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if len(raw) == 0 || string(raw) == "null" { // an empty document
			continue
		}
		// Unstructured's own decoder keeps integers as int64, which Compute
		// needs for metadata.generation (a plain map would hold float64).
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			return err
		}
		res, err := status.Compute(u)
		if err != nil {
			return fmt.Errorf("%s/%s: %w", u.GetKind(), u.GetName(), err)
		}
		fmt.Printf("%s/%s/%s\t%s\t%s\n", u.GetKind(), u.GetNamespace(), u.GetName(), res.Status, res.Message)
	}
}
