// fetch URL: GET the URL and print the body, exit 1 on any failure. The one program of the
// image tests/integration/test_node_service.py runs in a Pod to reach a Service, built
// there because this machine pulls no images (docs/node.md).
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: fetch URL")
		os.Exit(2)
	}
	client := http.Client{Timeout: 10 * time.Second}
	response, err := client.Get(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "fetch:", err)
		os.Exit(1)
	}
	defer response.Body.Close()
	body, err := io.ReadAll(io.LimitReader(response.Body, 1<<16))
	if err != nil || response.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "fetch:", response.Status, err)
		os.Exit(1)
	}
	os.Stdout.Write(body)
}
