package sink

import (
	"context"
	"log/slog"

	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"
)

// driverLogger bridges a library's slog output (clickhouse-go, goose) into logger, named
// "clickhouse", with every record demoted to debug: the libraries' errors reach the caller as
// returned errors, so logging them again above debug would only repeat them.
func driverLogger(logger *zap.Logger) *slog.Logger {
	return slogAtDebug(logger, "clickhouse")
}

func slogAtDebug(logger *zap.Logger, name string) *slog.Logger {
	if logger == nil {
		logger = zap.NewNop()
	}
	if parent := logger.Name(); parent != "" {
		name = parent + "." + name
	}
	return slog.New(debugHandler{zapslog.NewHandler(logger.Core(), zapslog.WithName(name))})
}

// debugHandler passes every record on at debug level.
type debugHandler struct{ next slog.Handler }

func (h debugHandler) Enabled(ctx context.Context, _ slog.Level) bool {
	return h.next.Enabled(ctx, slog.LevelDebug)
}

func (h debugHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Level = slog.LevelDebug
	return h.next.Handle(ctx, r)
}

func (h debugHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return debugHandler{h.next.WithAttrs(attrs)}
}

func (h debugHandler) WithGroup(name string) slog.Handler {
	return debugHandler{h.next.WithGroup(name)}
}
