package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

func TestParseDiscoveryAndWebhookFlags(t *testing.T) {
	c, err := parseFlags([]string{
		"-conversation-order", "created", "-live-new-conversation-rate", "0.2",
		"-webhook-url", "http://127.0.0.1:9/hooks", "-webhook-secret", "s", "-webhook-signature-header", "X-Sig",
		"-webhook-signature-encoding", "sha256=base64", "-webhook-shape", "envelope", "-webhook-conversation-id",
		"-webhook-retries", "5", "-webhook-retry-backoff", "2s", "-webhook-loss", "0.1", "-webhook-duplicate", "0.2",
		"-webhook-reorder", "0.3", "-webhook-bad-signature", "0.4", "-webhook-delay", "250ms",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o := c.opts
	if o.ConversationOrder != cekatsim.OrderCreated || o.LiveNewConversationRate != 0.2 || o.WebhookURL != "http://127.0.0.1:9/hooks" ||
		o.WebhookSecret != "s" || o.WebhookSignatureHeader != "X-Sig" || o.WebhookSignatureEncoding != cekatsim.SignatureSHA256Base64 ||
		o.WebhookShape != cekatsim.WebhookEnvelope || !o.WebhookConversationID || o.WebhookRetries != 5 || o.WebhookRetryBackoff != 2*time.Second ||
		o.WebhookLoss != 0.1 || o.WebhookDuplicate != 0.2 || o.WebhookReorder != 0.3 || o.WebhookBadSignature != 0.4 || o.WebhookDelay != 250*time.Millisecond {
		t.Fatalf("options %+v", o)
	}
	c, err = parseFlags(nil, io.Discard)
	if o := c.opts; err != nil || o.ConversationOrder != cekatsim.OrderActivity || o.WebhookURL != "" || o.WebhookSecret != cekatsim.DefaultWebhookSecret ||
		o.WebhookSignatureHeader != cekatsim.DefaultWebhookSignatureHeader || o.WebhookSignatureEncoding != cekatsim.SignatureHex ||
		o.WebhookShape != cekatsim.WebhookDocumented || o.WebhookRetries != cekatsim.DefaultWebhookRetries || o.WebhookConversationID {
		t.Fatalf("defaults %+v, %v", o, err)
	}
	if c, _ := parseFlags([]string{"-webhook-retries", "0"}, io.Discard); c.opts.WebhookRetries >= 0 {
		t.Fatalf("-webhook-retries 0 gives %d: the package would take it for its default", c.opts.WebhookRetries)
	}
	for _, bad := range [][]string{
		{"-conversation-order", "newest"}, {"-webhook-url", "ftp://x"}, {"-webhook-signature-encoding", "sha1"},
		{"-webhook-shape", "classic"}, {"-webhook-loss", "2"}, {"-live-new-conversation-rate", "-1"},
	} {
		if code := runWith(context.Background(), bad, io.Discard); code != 2 {
			t.Errorf("%v: exit %d", bad, code)
		}
	}
}

// TestRunServesConversationsAndSendsWebhooks: the program lists
// conversations, adds one through /_sim/, and its webhook arrives signed.
func TestRunServesConversationsAndSendsWebhooks(t *testing.T) {
	var mu sync.Mutex
	var got []string
	hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if cekatsim.WebhookSignature("sekret", b, cekatsim.SignatureHex) == r.Header.Get("X-Sig") {
			mu.Lock()
			got = append(got, string(b))
			mu.Unlock()
		}
	}))
	defer hooks.Close()
	var stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- runWith(ctx, []string{"-listen", "127.0.0.1:0", "-backoffice-listen", "", "-conversations", "4",
			"-webhook-url", hooks.URL, "-webhook-secret", "sekret", "-webhook-signature-header", "X-Sig"}, &stderr)
	}()
	re := regexp.MustCompile(`messages API listening on (http://\S+)`)
	var base string
	for deadline := time.Now().Add(5 * time.Second); base == ""; time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no listen line: %s", stderr.String())
		}
	}
	resp, err := http.Post(base+"/_sim/add-conversation", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var added map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&added)
	resp.Body.Close()
	req, _ := http.NewRequest("GET", base+"/api/conversations?limit=100", nil)
	req.Header.Set("Authorization", "Bearer "+cekatsim.DefaultAPIKey)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Count(string(body), `"contact_phone"`) != 5 || !strings.Contains(string(body), added["conversation_id"]) {
		t.Fatalf("conversations: %d %s", resp.StatusCode, body)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 2 { // conversation.created and message.received
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d signed webhooks arrived: %s", n, stderr.String())
		}
	}
	mu.Lock()
	first := got[0]
	mu.Unlock()
	if !strings.Contains(first, `"event":"conversation.created"`) || !strings.Contains(first, added["conversation_id"]) {
		t.Fatalf("first webhook %s", first)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}
