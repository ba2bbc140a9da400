// Cluster DNS for the local node: CoreDNS with only the plugins its Corefile uses
// (devnode writes it). CoreDNS's own main links every plugin, cloud SDKs included;
// listing a few here keeps the build small. The order of Directives is the order
// the plugins see a query, as in CoreDNS's plugin.cfg.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loop"
)

func init() {
	dnsserver.Directives = []string{"bind", "health", "errors", "cache", "kubernetes", "loop", "forward"}
}

func main() {
	coremain.Run()
}
