// The pod sandbox's process: it holds the pod's namespaces open and does nothing
// else. Built here because this machine pulls no images (docs/node.md).
// As PID 1 of its namespace it must exit on SIGTERM/SIGINT itself (the kernel
// ignores signals PID 1 has no handler for) and reap orphans re-parented to it.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
