// Package daemon runs jobs on cron schedules for months on end: a run of a
// job never overlaps the previous one, a stop signal lets the run in hand
// write what it has within a grace period, and an HTTP server answers
// /metrics, /healthz and /readyz.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/robfig/cron/v3"
	"go.uber.org/zap"
)

// Job is work started on a schedule.
type Job struct {
	Name     string // a short fixed name: the metric label "task" (Prometheus owns "job")
	Schedule cron.Schedule
	// Run does one run; its context ends when the daemon is stopped.
	Run func(ctx context.Context) error
	// RunAtStart starts a run as soon as the daemon starts.
	RunAtStart bool
	// Trigger, when set, starts a run whenever it receives; a trigger
	// that comes during a run starts another one right after it.
	Trigger <-chan struct{}
	// Debounce makes a burst of triggers one run: the run starts Debounce
	// after the first trigger, and the triggers that come meanwhile join
	// it. The wait is not prolonged by them: a steady stream of triggers
	// still starts a run every Debounce.
	Debounce time.Duration
	// Exclusive runs alone: a run waits for the runs of other jobs in hand
	// to finish, and theirs wait for it (the retention purge never runs
	// while a sync does). See gate.
	Exclusive bool
}

// Options configure a Daemon.
type Options struct {
	// Listen is the address of the HTTP server; empty turns it off.
	Listen string
	// Grace bounds how long a stop waits for runs in hand (30s).
	Grace time.Duration
	// ReadyMaxFailing is how long a job may keep failing before /readyz
	// says not ready (30m).
	ReadyMaxFailing time.Duration
	// Ping checks the archive for /readyz.
	Ping func(ctx context.Context) error
	// Registry is where the daemon registers its metrics and what /metrics serves.
	Registry *prometheus.Registry
	Logger   *zap.Logger
	Now      func() time.Time
	// After is the clock of the triggers' debounce (time.After); tests
	// set it to release the wait themselves.
	After func(time.Duration) <-chan time.Time
}

// Daemon runs jobs on their schedules.
type Daemon struct {
	jobs    []*jobState
	opts    Options
	log     *zap.Logger
	metrics *metrics

	mu      sync.Mutex
	closing bool
	runs    sync.WaitGroup
	gate    *gate // keeps Exclusive runs alone
	// alone is the name of the last Exclusive job to wait at or pass the
	// gate: what the others' starts wait for.
	alone atomic.Pointer[string]
}

type jobState struct {
	Job
	running atomic.Bool // a start of it is going: waiting at the gate or running
	waiting atomic.Bool // that start waits at the gate
	// skipped counts the starts skipped while the start in hand goes: the
	// first is logged, the others when it ends.
	skipped atomic.Int64
	mu      sync.Mutex
	// failingSince is when the job's current streak of failed runs began.
	failingSince time.Time
	lastErr      error
}

type metrics struct {
	runs        *prometheus.CounterVec
	skipped     *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	lastSuccess *prometheus.GaugeVec
	running     *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns = "cekat_archiver"
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "runs_total",
			Help: "Finished runs by task and result (success or failure)."}, []string{"task", "result"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "runs_skipped_total",
			Help: "Scheduled starts skipped by task and reason: running, the previous run was still going (runs take " +
				"longer than their schedule); waiting, the previous start still waited for a task that runs alone " +
				"(the retention purge) or, for that task, for the runs in hand."}, []string{"task", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "run_duration_seconds",
			Help: "Duration of runs by task.", Buckets: prometheus.ExponentialBuckets(0.5, 2, 14)}, []string{"task"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "last_success_timestamp_seconds",
			Help: "Unix time of the end of the last successful run by task; absent until one succeeds."}, []string{"task"}),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "run_in_progress",
			Help: "1 while a run of the task is going."}, []string{"task"}),
	}
	reg.MustRegister(m.runs, m.skipped, m.duration, m.lastSuccess, m.running)
	return m
}

// New checks the jobs and options.
func New(jobs []Job, opts Options) (*Daemon, error) {
	if opts.Grace <= 0 {
		opts.Grace = 30 * time.Second
	}
	if opts.ReadyMaxFailing <= 0 {
		opts.ReadyMaxFailing = 30 * time.Minute
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.After == nil {
		opts.After = time.After
	}
	if opts.Ping == nil {
		opts.Ping = func(context.Context) error { return nil }
	}
	d := &Daemon{opts: opts, log: opts.Logger, metrics: newMetrics(opts.Registry), gate: newGate()}
	for _, j := range jobs {
		if j.Name == "" || j.Schedule == nil || j.Run == nil {
			return nil, fmt.Errorf("daemon: job %q needs a name, a schedule and a run function", j.Name)
		}
		d.jobs = append(d.jobs, &jobState{Job: j})
		d.metrics.runs.WithLabelValues(j.Name, "success")
		d.metrics.runs.WithLabelValues(j.Name, "failure")
		d.metrics.skipped.WithLabelValues(j.Name, skipRunning)
		d.metrics.skipped.WithLabelValues(j.Name, skipWaiting)
		d.metrics.running.WithLabelValues(j.Name)
		// lastSuccess is not made here: a 0 would read as a success in 1970.
	}
	return d, nil
}

// Run serves and schedules until ctx ends, then stops starting runs, tells
// the runs in hand to stop (their context ends), waits up to the grace
// period for them, whoever started them, and returns within the grace
// period even when a run does not return. It returns an error when the HTTP
// server cannot listen or the grace period ran out.
func (d *Daemon) Run(ctx context.Context) error {
	var srv *http.Server
	serveErr := make(chan error, 1)
	if d.opts.Listen != "" {
		ln, err := net.Listen("tcp", d.opts.Listen)
		if err != nil {
			return fmt.Errorf("daemon: listen on %s: %w", d.opts.Listen, err)
		}
		srv = &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 10 * time.Second}
		d.log.Info("serving /metrics, /healthz and /readyz", zap.String("addr", ln.Addr().String()))
		go func() { serveErr <- srv.Serve(ln) }()
	}

	// Every run, started at start or by cron, gets runCtx: a stop for any
	// reason cancels it, so the run in hand writes what it has.
	runCtx, stopRuns := context.WithCancelCause(ctx)
	defer stopRuns(nil)
	c := cron.New(cron.WithChain(cron.Recover(cronLogger{d.log})), cron.WithLogger(cronLogger{d.log}))
	for _, j := range d.jobs {
		c.Schedule(j.Schedule, cron.FuncJob(func() { d.start(runCtx, j, "schedule") }))
		d.log.Info("job scheduled", zap.String("job", j.Name), zap.Time("next", j.Schedule.Next(d.opts.Now())))
		if j.RunAtStart {
			go d.start(runCtx, j, "start")
		}
		if j.Trigger != nil {
			go d.triggered(runCtx, j)
		}
	}
	c.Start()

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("daemon: HTTP server: %w", err)
		stopRuns(err)
	}
	// The grace bounds the whole stop: the runs in hand, whoever started
	// them, and the HTTP server.
	stopBy := time.Now().Add(d.opts.Grace)
	d.log.Info("stopping: no new runs; waiting for the runs in hand", zap.Duration("grace", d.opts.Grace))
	// Not waiting for cron's own Done: it waits for the runs cron started
	// without any bound. d.runs counts those too, and wait bounds them.
	c.Stop()
	if werr := d.wait(stopBy); werr != nil && err == nil {
		err = werr
	}
	if srv != nil {
		sctx, cancel := context.WithDeadline(context.Background(), stopBy)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			_ = srv.Close()
		}
	}
	return err
}

// start runs a job unless its previous run is still going or the daemon
// is stopping.
func (d *Daemon) start(ctx context.Context, j *jobState, why string) {
	d.mu.Lock()
	if d.closing || ctx.Err() != nil {
		d.mu.Unlock()
		return
	}
	if !j.running.CompareAndSwap(false, true) {
		d.mu.Unlock()
		d.skip(j, why)
		return
	}
	d.runs.Add(1)
	d.mu.Unlock()
	defer d.runs.Done()
	defer func() {
		if n := j.skipped.Swap(0); n > 0 {
			d.log.Info("the run that made starts skip has ended", zap.String("job", j.Name), zap.Int64("skipped", n))
		}
	}()
	defer j.running.Store(false)
	if j.Exclusive {
		d.alone.Store(&j.Name)
	}
	if err := d.gate.acquire(ctx, j.Exclusive, func() {
		j.waiting.Store(true)
		if j.Exclusive {
			d.log.Info("run waits for the runs in hand to finish: it runs alone", zap.String("job", j.Name))
		} else {
			d.log.Info("run waits for "+d.aloneName()+" to finish: it runs alone", zap.String("job", j.Name))
		}
	}); err != nil {
		j.waiting.Store(false)
		return // stopped while it waited: it never began
	}
	j.waiting.Store(false)
	defer d.gate.release(j.Exclusive)

	d.metrics.running.WithLabelValues(j.Name).Set(1)
	defer d.metrics.running.WithLabelValues(j.Name).Set(0)
	started := d.opts.Now()
	err := j.Run(ctx)
	finished := d.opts.Now()
	d.metrics.duration.WithLabelValues(j.Name).Observe(finished.Sub(started).Seconds())

	j.mu.Lock()
	defer j.mu.Unlock()
	if err != nil {
		d.metrics.runs.WithLabelValues(j.Name, "failure").Inc()
		if j.failingSince.IsZero() {
			j.failingSince = started
		}
		j.lastErr = err
		return
	}
	d.metrics.runs.WithLabelValues(j.Name, "success").Inc()
	d.metrics.lastSuccess.WithLabelValues(j.Name).Set(float64(finished.UnixNano()) / 1e9)
	j.failingSince, j.lastErr = time.Time{}, nil
}

// The reasons a start is skipped: the label values of runs_skipped_total.
const (
	skipRunning = "running" // the previous run is still going
	skipWaiting = "waiting" // the previous start still waits at the gate
)

// skip counts and logs a start of j skipped because its previous start is
// still going, telling a run that takes longer than its schedule from a
// start that waits for a run that runs alone.
func (d *Daemon) skip(j *jobState, why string) {
	reason, msg, level := skipRunning, "run skipped: the previous run is still going", zap.WarnLevel
	switch {
	case !j.waiting.Load():
	case j.Exclusive:
		reason, msg, level = skipWaiting, "run skipped: its previous start still waits for the runs in hand (it runs alone)", zap.InfoLevel
	default:
		reason, msg, level = skipWaiting, "run skipped: its previous start still waits for "+d.aloneName()+", which runs alone", zap.InfoLevel
	}
	d.metrics.skipped.WithLabelValues(j.Name, reason).Inc()
	if j.skipped.Add(1) == 1 {
		d.log.Log(level, msg+"; further starts it makes skip are logged once it ends", zap.String("job", j.Name), zap.String("why", why))
	}
}

// aloneName names the task that runs alone, for logs.
func (d *Daemon) aloneName() string {
	if name := d.alone.Load(); name != nil {
		return *name
	}
	return "a task that runs alone"
}

// triggered starts a run of j at each trigger, one after the other, until
// ctx ends. The triggers that come within j.Debounce of the first join its
// run; those that come later, while it runs, start one more after it.
func (d *Daemon) triggered(ctx context.Context, j *jobState) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-j.Trigger:
		}
		if j.Debounce > 0 {
			select {
			case <-ctx.Done():
				return
			case <-d.opts.After(j.Debounce):
			}
		}
		// The run that starts next sees the work of every trigger so far:
		// those that came during the wait are its own.
		select {
		case <-j.Trigger:
		default:
		}
		for j.running.Load() && ctx.Err() == nil {
			// A run the schedule started is going: this trigger's work
			// starts after it, not never.
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
		d.start(ctx, j, "trigger")
	}
}

// Signal is a Job's Trigger that any number of senders pull without ever
// blocking: the pulls that come before the job takes one are one.
type Signal chan struct{}

// NewSignal makes a Signal.
func NewSignal() Signal { return make(Signal, 1) }

// Notify pulls s.
func (s Signal) Notify() {
	select {
	case s <- struct{}{}:
	default: // a run is already asked for
	}
}

// wait waits for the runs in hand until stopBy.
func (d *Daemon) wait(stopBy time.Time) error {
	d.mu.Lock()
	d.closing = true
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.runs.Wait(); close(done) }()
	t := time.NewTimer(time.Until(stopBy))
	defer t.Stop()
	select {
	case <-done:
		d.log.Info("stopped cleanly")
		return nil
	case <-t.C:
		return fmt.Errorf("daemon: runs still going after the %s grace period; the next start resumes from the last saved state", d.opts.Grace)
	}
}

// Handler serves /metrics, /healthz and /readyz.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.opts.Registry, promhttp.HandlerOpts{Registry: d.opts.Registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := d.Ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// Ready reports whether the archive answers and no job has kept failing
// for longer than ReadyMaxFailing.
func (d *Daemon) Ready(ctx context.Context) error {
	if err := d.opts.Ping(ctx); err != nil {
		return fmt.Errorf("archive unreachable: %w", err)
	}
	now := d.opts.Now()
	var errs []error
	for _, j := range d.jobs {
		j.mu.Lock()
		if !j.failingSince.IsZero() && now.Sub(j.failingSince) > d.opts.ReadyMaxFailing {
			errs = append(errs, fmt.Errorf("job %s failing since %s: %v", j.Name, j.failingSince.UTC().Format(time.RFC3339), j.lastErr))
		}
		j.mu.Unlock()
	}
	return errors.Join(errs...)
}

// cronLogger sends robfig/cron's errors to zap. Its Info (every tick, and
// "stop" from its own goroutine after Stop returned) says nothing the
// daemon's own logs do not.
type cronLogger struct{ log *zap.Logger }

func (cronLogger) Info(string, ...any) {}
func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Sugar().Errorw("cron: "+msg, append(kv, "error", err)...)
}
