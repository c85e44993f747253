package main

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Set by the build when the toolchain cannot stamp VCS information (a
// Docker build without .git, GOFLAGS=-buildvcs=false):
//
//	go build -ldflags "-X main.ldVersion=v1.2.3 -X main.ldRevision=$(git rev-parse HEAD)"
//
// Link-time constants in all but name; nothing assigns them at run time.
var ldVersion, ldRevision string

// versionLine is what `version` and `--version` print.
func versionLine() string {
	return "cekat-archiver " + version() + " (" + revision() + ", " + runtime.Version() + ")"
}

// revision is the VCS revision the binary was built from, "unknown" when
// the build did not record it (go run, a build outside a checkout); with
// "-dirty" when the checkout had changes.
func revision() string {
	if ldRevision != "" {
		return ldRevision
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "unknown", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && rev != "unknown" {
		rev += "-dirty"
	}
	return rev
}

// newBuildInfo is the gauge cekat_archiver_build_info, always 1, whose labels
// say which build runs: dashboards and alerts join on it to tell versions
// apart.
func newBuildInfo() prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "cekat_archiver", Name: "build_info",
		Help: "1, labelled with the version, VCS revision and Go version of the running binary."},
		[]string{"version", "revision", "goversion"})
	g.WithLabelValues(version(), revision(), runtime.Version()).Set(1)
	return g
}
