package sink

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestDriverLoggerDemotesToDebug(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := driverLogger(zap.New(core).Named("sink"))
	l.Error("exec context error", "error", "boom")
	l.Info("connected")

	got := logs.All()
	if len(got) != 2 {
		t.Fatalf("got %d entries, want 2: %+v", len(got), got)
	}
	for _, e := range got {
		if e.Level != zapcore.DebugLevel {
			t.Errorf("%q logged at %v, want debug", e.Message, e.Level)
		}
		if e.LoggerName != "sink.clickhouse" {
			t.Errorf("%q logged by %q, want sink.clickhouse", e.Message, e.LoggerName)
		}
	}

	// A logger above debug gets nothing.
	core, logs = observer.New(zapcore.InfoLevel)
	driverLogger(zap.New(core)).Error("exec context error")
	if logs.Len() != 0 {
		t.Errorf("an info-level logger received %d driver entries, want 0", logs.Len())
	}
}
