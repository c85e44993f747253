package syncer

import "go.uber.org/zap"

// lockRun takes the engine's one-run-at-a-time lock. A run that has to
// wait for it (a run for webhook events behind a long first sync) says so
// once, and again when it starts: the wait can last minutes.
func (e *Engine) lockRun(opts SyncOptions) {
	if e.mu.TryLock() {
		return
	}
	kind := "scheduled"
	switch {
	case opts.Triggered:
		kind = "webhook events"
	case len(opts.Only) > 0:
		kind = "named conversations"
	}
	start := e.opts.Now()
	e.log.Info("run waits for the run in hand to finish", zap.String("run", kind), zap.Int("conversations", len(opts.Only)))
	e.mu.Lock()
	e.log.Info("run starts after waiting for the run in hand", zap.String("run", kind), zap.Duration("waited", e.opts.Now().Sub(start)))
}
