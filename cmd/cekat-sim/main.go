// Command cekat-sim serves a simulated Cekat "Classic" messages API (and its
// back-office delete endpoint) for demos, manual tests and benchmarks.
//
//	cekat-sim -shape real -conversations 500 -mean-messages 40 -rate-per-minute 10
//
// The API listener also serves the New Open API's GET /api/conversations
// (-conversation-order), and with -webhook-url the simulator POSTs signed
// webhook events for live messages, status changes and new or resolved
// conversations (-webhook-* flags; see the cekatsim package).
//
// Admin endpoints (no auth, not counted) live under /_sim/ on the API listener:
// GET /_sim/truth, GET /_sim/counts, POST /_sim/advance?d=90m,
// POST /_sim/reset-counts, POST /_sim/add?conversation_id=X&n=5,
// GET /_sim/conversations, POST /_sim/add-conversation, GET /_sim/webhooks,
// GET /_sim/deletions (the back-office delete's log), POST /_sim/delete-faults
// (a JSON array of {"status", "retry_after", "keep"}: the next deletes' faults).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

func main() { os.Exit(run()) }

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runWith(ctx, os.Args[1:], os.Stderr)
}

type config struct {
	listen, backofficeListen string
	idsFile                  string
	opts                     cekatsim.Options
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var (
		c                       config
		counts, shape, auth     string
		rateHeaders             string
		start                   string
		fs                      = flag.NewFlagSet("cekat-sim", flag.ContinueOnError)
		o                       = &c.opts
		faultDrop, faultTrunc   float64
		fault5xx, malformedRate float64
		order, sigEnc, whShape  string
		retries                 int
	)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8090", "address of the messages API (and /_sim/ admin endpoints)")
	fs.StringVar(&c.backofficeListen, "backoffice-listen", "127.0.0.1:8091", "address of the back-office API; empty serves it on -listen")
	fs.StringVar(&c.idsFile, "ids-file", "", "write the conversation ids to this file, one per line")
	fs.Int64Var(&o.Seed, "seed", 1, "seed of everything generated")
	fs.IntVar(&o.Conversations, "conversations", 100, "number of conversations")
	fs.IntVar(&o.MeanMessages, "mean-messages", 20, "approximate mean of the heavy-tailed message count per conversation")
	fs.StringVar(&counts, "counts", "", "exact message counts per conversation, comma separated (overrides -conversations and -mean-messages)")
	fs.StringVar(&shape, "shape", string(cekatsim.ShapeDocumented), "wire shape: documented or real")
	fs.StringVar(&auth, "auth", string(cekatsim.AuthAny), "messages API auth: bearer, api_key, both or any")
	fs.StringVar(&o.APIKey, "api-key", cekatsim.DefaultAPIKey, "API key")
	fs.StringVar(&o.BackofficeToken, "backoffice-token", cekatsim.DefaultBackofficeToken, "back-office token")
	fs.StringVar(&o.BackofficeAuth, "backoffice-auth", "", "back-office auth: access_token or bearer (default: bearer for the documented shape, access_token for the real one)")
	fs.BoolVar(&o.NoPagination, "no-pagination", false, "list returns the whole history without a pagination object")
	fs.IntVar(&o.RatePerMinute, "rate-per-minute", 0, "requests per minute (0 = unlimited)")
	fs.IntVar(&o.RatePerDay, "rate-per-day", 0, "requests per UTC day (0 = unlimited)")
	fs.BoolVar(&o.RetryAfter, "retry-after", false, "send Retry-After with 429 answers")
	fs.StringVar(&rateHeaders, "rate-headers", string(cekatsim.RateHeadersAll), "X-RateLimit-* headers sent: all (Limit, Remaining, Reset), limit_remaining or none")
	fs.BoolVar(&o.RateWindowAligned, "rate-window-aligned", false, "per-minute windows are the clock's minutes (default: 60 s from the first request after the previous window)")
	fs.DurationVar(&o.Latency, "latency", 0, "latency added to every API request")
	fs.Float64Var(&fault5xx, "fault-5xx", 0, "probability of a 500/502/503 answer")
	fs.Float64Var(&faultDrop, "fault-drop", 0, "probability of a connection closed without an answer")
	fs.Float64Var(&faultTrunc, "fault-truncate", 0, "probability of a 200 answer with its JSON cut in the middle")
	fs.Float64Var(&malformedRate, "malformed-rate", 0, "fraction of messages served malformed")
	fs.Float64Var(&o.LiveRate, "live-rate", 0, "probability that 1..3 messages arrive in a conversation before a list request on it")
	fs.BoolVar(&o.OddIDs, "odd-ids", false, "message and conversation ids hold ', /, ?, %, #, spaces and unicode")
	fs.IntVar(&o.CursorCycleConversations, "cursor-cycle-conversations", 0, "number of conversations whose list cursors cycle A -> B -> A with has_more for ever")
	fs.Float64Var(&o.ForeignItemRate, "foreign-item-rate", 0, "probability that a list page also holds a message of another conversation")
	fs.StringVar(&order, "conversation-order", string(cekatsim.OrderActivity), "order of GET /api/conversations: activity (newest last message first), created (newest first) or id")
	fs.Float64Var(&o.LiveNewConversationRate, "live-new-conversation-rate", 0, "probability that a new conversation starts before a GET /api/conversations request")
	fs.StringVar(&o.WebhookURL, "webhook-url", "", "POST webhook events to this URL (empty: no webhooks)")
	fs.StringVar(&o.WebhookSecret, "webhook-secret", cekatsim.DefaultWebhookSecret, "webhook signing secret (HMAC-SHA256 of the raw body)")
	fs.StringVar(&o.WebhookSignatureHeader, "webhook-signature-header", cekatsim.DefaultWebhookSignatureHeader, "header carrying the webhook signature")
	fs.StringVar(&sigEnc, "webhook-signature-encoding", string(cekatsim.SignatureHex), "webhook signature encoding: hex, base64, sha256=hex or sha256=base64")
	fs.StringVar(&whShape, "webhook-shape", string(cekatsim.WebhookDocumented), "webhook body: documented ({event, timestamp, data}) or envelope ({id, object, timestamp, event_name, data})")
	fs.BoolVar(&o.WebhookConversationID, "webhook-conversation-id", false, "webhook data carries conversation_id")
	fs.IntVar(&retries, "webhook-retries", cekatsim.DefaultWebhookRetries, "further attempts after a webhook delivery failed (0 = none)")
	fs.DurationVar(&o.WebhookRetryBackoff, "webhook-retry-backoff", cekatsim.DefaultWebhookRetryBackoff, "wait before the first webhook retry, doubling")
	fs.Float64Var(&o.WebhookLoss, "webhook-loss", 0, "probability that a webhook event is never sent")
	fs.Float64Var(&o.WebhookDuplicate, "webhook-duplicate", 0, "probability that a webhook event is sent twice")
	fs.Float64Var(&o.WebhookReorder, "webhook-reorder", 0, "probability that a webhook event is sent after the next one")
	fs.Float64Var(&o.WebhookBadSignature, "webhook-bad-signature", 0, "probability that a webhook copy is signed with a wrong key")
	fs.DurationVar(&o.WebhookDelay, "webhook-delay", 0, "largest random delay of each webhook copy")
	fs.StringVar(&start, "start", cekatsim.DefaultStart.Format(time.RFC3339), "simulated clock start (RFC3339)")
	fs.IntVar(&o.MaxDeleteBatch, "max-delete-batch", cekatsim.DefaultMaxDeleteBatch, "most conversation ids accepted by one delete")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	o.Shape, o.Auth = cekatsim.Shape(shape), cekatsim.AuthMode(auth)
	o.RateHeaders = cekatsim.RateHeaders(rateHeaders)
	o.ConversationOrder = cekatsim.ConversationOrder(order)
	o.WebhookSignatureEncoding, o.WebhookShape = cekatsim.SignatureEncoding(sigEnc), cekatsim.WebhookShape(whShape)
	o.WebhookRetries = retries
	if retries == 0 {
		o.WebhookRetries = -1 // the package's zero means its default
	}
	o.Fault5xx, o.FaultDrop, o.FaultTruncate, o.MalformedRate = fault5xx, faultDrop, faultTrunc, malformedRate
	if counts != "" {
		for _, f := range strings.Split(counts, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 0 {
				return c, fmt.Errorf("-counts: %q is not a message count", f)
			}
			o.MessageCounts = append(o.MessageCounts, n)
		}
	}
	t, err := time.Parse(time.RFC3339, start)
	if err != nil {
		return c, fmt.Errorf("-start: %w", err)
	}
	o.Start = t
	return c, nil
}

func runWith(ctx context.Context, args []string, stderr io.Writer) int {
	logger := log.New(stderr, "cekat-sim: ", log.LstdFlags)
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		logger.Print(err)
		return 2
	}
	sim, err := cekatsim.New(cfg.opts)
	if err != nil {
		logger.Print(err)
		return 2
	}
	defer sim.Close()
	ids := sim.ConversationIDs()
	if cfg.idsFile != "" {
		if err := os.WriteFile(cfg.idsFile, []byte(strings.Join(ids, "\n")+"\n"), 0o644); err != nil {
			logger.Print(err)
			return 1
		}
	}

	apiHandler := sim.Handler()
	type server struct {
		name string
		srv  *http.Server
		ln   net.Listener
	}
	var servers []server
	if cfg.backofficeListen == "" {
		mux := http.NewServeMux()
		mux.Handle("/v1/backoffice/", sim.BackofficeHandler())
		mux.Handle("/", apiHandler)
		apiHandler = mux
	}
	listen := func(name, addr string, h http.Handler) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		servers = append(servers, server{name, &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, ln})
		logger.Printf("%s listening on http://%s", name, ln.Addr())
		return nil
	}
	err = listen("messages API", cfg.listen, apiHandler)
	if err == nil && cfg.backofficeListen != "" {
		err = listen("back-office API", cfg.backofficeListen, sim.BackofficeHandler())
	}
	if err != nil {
		for _, s := range servers {
			_ = s.ln.Close()
		}
		logger.Print(err)
		return 1
	}
	logger.Printf("%d conversations, shape %s, seed %d", len(ids), cfg.opts.Shape, cfg.opts.Seed)
	if cfg.opts.WebhookURL != "" {
		logger.Printf("webhooks to %s, %s shape, signature in %s (%s)", cfg.opts.WebhookURL, cfg.opts.WebhookShape, cfg.opts.WebhookSignatureHeader, cfg.opts.WebhookSignatureEncoding)
	}

	errc := make(chan error, len(servers))
	for _, s := range servers {
		go func() { errc <- s.srv.Serve(s.ln) }()
	}
	code := 0
	select {
	case <-ctx.Done():
		logger.Print("shutting down")
	case err := <-errc:
		logger.Print(err)
		code = 1
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		if err := s.srv.Shutdown(shutdownCtx); err != nil {
			logger.Printf("%s: %v", s.name, err)
			code = 1
		}
	}
	return code
}
