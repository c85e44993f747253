package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
)

// Starts skipped behind a long run are logged once, and counted when it
// ends, not once each.
func TestSkippedStartsAreLoggedOncePerRun(t *testing.T) {
	reg := prometheus.NewRegistry()
	core, logs := observer.New(zap.InfoLevel)
	release := make(chan struct{}, 1)
	d, err := New([]Job{{Name: "webhook", Schedule: every(5 * time.Millisecond), Run: func(ctx context.Context) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}}}, Options{Registry: reg, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	skips := func() float64 {
		return counter(t, reg, "cekat_archiver_runs_skipped_total", map[string]string{"task": "webhook", "reason": "running"})
	}
	for streak := 1; streak <= 2; streak++ {
		before := skips()
		sinktest.WaitFor(t, "skipped starts", func() bool { return skips() >= before+5 })
		if n := logs.FilterMessageSnippet("run skipped").Len(); n != streak {
			t.Errorf("streak %d: %d 'run skipped' lines, want %d", streak, n, streak)
		}
		release <- struct{}{}
		sinktest.WaitFor(t, "the end of the run", func() bool { return logs.FilterMessageSnippet("made starts skip has ended").Len() == streak })
	}
	ended := logs.FilterMessageSnippet("made starts skip has ended").All()
	if n, _ := ended[0].ContextMap()["skipped"].(int64); n < 5 {
		t.Errorf("first run's end says %d skipped, want at least 5", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
