package cekatsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var shapes = []Shape{ShapeDocumented, ShapeReal}

// walk pages through a conversation the documented way and returns the raw
// items oldest first, checking the page invariants on the way.
func walk(t *testing.T, e *env, conv string, limit int) []json.RawMessage {
	t.Helper()
	var pages [][]json.RawMessage
	before := ""
	for i := 0; ; i++ {
		params := []string{}
		if limit > 0 {
			params = append(params, "limit", strconv.Itoa(limit))
		}
		if before != "" {
			params = append(params, "before", before)
		}
		a := e.get(listPath(conv, params...))
		if a.err != nil || a.status != http.StatusOK {
			t.Fatalf("page %d of %s: %v %d %.200s", i, conv, a.err, a.status, a.body)
		}
		p := decodePage(t, a.body)
		if !p.hasPag {
			t.Fatalf("no pagination object")
		}
		want := limit
		if limit <= 0 {
			want = DefaultListLimit
		}
		if len(p.items) > want || (p.hasMore && len(p.items) != want) {
			t.Fatalf("page %d has %d items (limit %d, has_more %v)", i, len(p.items), want, p.hasMore)
		}
		if len(p.items) == 0 {
			if p.hasMore || !p.beforeNull {
				t.Fatalf("empty page with has_more=%v before=%q", p.hasMore, p.before)
			}
		} else if p.before != itemID(p.items[0]) {
			t.Fatalf("pagination.before %q is not the oldest item of the page %q", p.before, itemID(p.items[0]))
		}
		pages = append(pages, p.items)
		if !p.hasMore {
			break
		}
		before = p.before
	}
	var all []json.RawMessage
	for i := len(pages) - 1; i >= 0; i-- {
		all = append(all, pages[i]...)
	}
	return all
}

func truthByConv(s *Server) map[string][]TruthMessage {
	out := map[string][]TruthMessage{}
	for _, m := range s.Truth() {
		out[m.ConversationID] = append(out[m.ConversationID], m)
	}
	return out
}

func TestPaginationWalksWholeHistoryOnce(t *testing.T) {
	for _, shape := range shapes {
		for _, limit := range []int{0, 1, 7, 100} {
			t.Run(fmt.Sprintf("%s/limit=%d", shape, limit), func(t *testing.T) {
				e := newEnv(t, Options{Seed: 11, MessageCounts: []int{0, 1, 7, 8, 50, 51, 230}, Shape: shape})
				truth := truthByConv(e.sim)
				for _, conv := range e.sim.ConversationIDs() {
					got := walk(t, e, conv, limit)
					want := truth[conv]
					if len(got) != len(want) {
						t.Fatalf("%s: walked %d messages, truth has %d", conv, len(got), len(want))
					}
					seen := map[string]bool{}
					for i, raw := range got {
						id := itemID(raw)
						if seen[id] {
							t.Fatalf("%s: message %s served twice", conv, id)
						}
						seen[id] = true
						if id != want[i].ID {
							t.Fatalf("%s: item %d is %s, want %s (oldest first within pages, newest page first)", conv, i, id, want[i].ID)
						}
					}
				}
			})
		}
	}
}

func TestBeforeIsExclusiveAndFirstPageIsNewest(t *testing.T) {
	e := newEnv(t, Options{Seed: 3, MessageCounts: []int{10}})
	conv := e.sim.ConversationIDs()[0]
	truth := e.sim.Truth()
	p := decodePage(t, e.get(listPath(conv, "limit", "3")).body)
	ids := []string{itemID(p.items[0]), itemID(p.items[1]), itemID(p.items[2])}
	if !slices.Equal(ids, []string{truth[7].ID, truth[8].ID, truth[9].ID}) || !p.hasMore || p.before != truth[7].ID {
		t.Fatalf("first page %v has_more=%v before=%s; want the three newest, oldest first", ids, p.hasMore, p.before)
	}
	p = decodePage(t, e.get(listPath(conv, "limit", "3", "before", truth[5].ID)).body)
	ids = []string{itemID(p.items[0]), itemID(p.items[1]), itemID(p.items[2])}
	if !slices.Equal(ids, []string{truth[2].ID, truth[3].ID, truth[4].ID}) {
		t.Fatalf("before=%s gave %v, want messages 2..4", truth[5].ID, ids)
	}
	p = decodePage(t, e.get(listPath(conv, "before", truth[0].ID)).body)
	if len(p.items) != 0 || p.hasMore {
		t.Fatalf("before the oldest message: %d items, has_more %v", len(p.items), p.hasMore)
	}
}

func TestNoPagination(t *testing.T) {
	for _, shape := range shapes {
		t.Run(string(shape), func(t *testing.T) {
			e := newEnv(t, Options{Seed: 5, MessageCounts: []int{250, 0}, Shape: shape, NoPagination: true})
			truth := e.sim.Truth()
			ids := e.sim.ConversationIDs()
			a := e.get(listPath(ids[0], "limit", "abc", "before", "nonsense"))
			if a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			if strings.Contains(string(a.body), `"pagination"`) {
				t.Fatal("answer has a pagination object")
			}
			p := decodePage(t, a.body)
			if len(p.items) != 250 {
				t.Fatalf("%d items, want the whole history of 250", len(p.items))
			}
			for i, raw := range p.items {
				if itemID(raw) != truth[i].ID {
					t.Fatalf("item %d out of order", i)
				}
			}
			if p := decodePage(t, e.get(listPath(ids[1])).body); len(p.items) != 0 {
				t.Fatal("empty conversation served items")
			}
		})
	}
}

func TestListErrors(t *testing.T) {
	e := newEnv(t, Options{Seed: 1, MessageCounts: []int{300, 4}})
	ids := e.sim.ConversationIDs()
	truth := truthByConv(e.sim)
	other := truth[ids[1]][0].ID
	cases := []struct {
		name, path string
		status     int
		items      int
	}{
		{"no conversation_id", "/messages", 400, 0},
		{"empty conversation_id", "/messages?conversation_id=", 400, 0},
		{"limit 0", listPath(ids[0], "limit", "0"), 400, 0},
		{"limit negative", listPath(ids[0], "limit", "-5"), 400, 0},
		{"limit not a number", listPath(ids[0], "limit", "ten"), 400, 0},
		{"limit empty", listPath(ids[0], "limit", ""), 400, 0},
		{"limit clamped", listPath(ids[0], "limit", "1000"), 200, 100},
		{"limit max", listPath(ids[0], "limit", "100"), 200, 100},
		{"default limit", listPath(ids[0]), 200, 50},
		{"unknown conversation", listPath("conv_000000000000"), 404, 0},
		{"unknown before", listPath(ids[0], "before", "msg_0000000000000000"), 400, 0},
		{"malformed before", listPath(ids[0], "before", "xyz"), 400, 0},
		{"before of another conversation", listPath(ids[0], "before", other), 400, 0},
		{"empty before is the first page", listPath(ids[0], "before", ""), 200, 50},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := e.get(tc.path)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			if tc.status != 200 {
				checkErrorEnvelope(t, a)
				return
			}
			if p := decodePage(t, a.body); len(p.items) != tc.items {
				t.Fatalf("%d items, want %d", len(p.items), tc.items)
			}
		})
	}
}

// checkErrorEnvelope accepts the three envelopes of the field notes.
func checkErrorEnvelope(t *testing.T, a answer) string {
	t.Helper()
	m := a.json(t)
	if m["success"] != false {
		t.Fatalf("error answer without success=false: %s", a.body)
	}
	switch e := m["error"].(type) {
	case string:
		if _, ok := m["code"]; !ok || e == "" {
			t.Fatalf("string error without code: %s", a.body)
		}
		return "string"
	case map[string]any:
		if _, ok := e["message"].(string); !ok {
			t.Fatalf("error object without message: %s", a.body)
		}
		if _, ok := m["status_code"]; ok {
			if int(m["status_code"].(float64)) != a.status {
				t.Fatalf("status_code disagrees with HTTP status: %s", a.body)
			}
			return "status_code"
		}
		if _, ok := e["code"].(string); !ok {
			t.Fatalf("error object without code: %s", a.body)
		}
		if _, ok := e["details"].([]any); !ok {
			t.Fatalf("error object without details: %s", a.body)
		}
		return "details"
	}
	t.Fatalf("unknown error envelope: %s", a.body)
	return ""
}

func TestErrorEnvelopesRotate(t *testing.T) {
	e := newEnv(t, Options{Seed: 1})
	seen := map[string]bool{}
	for range 6 {
		a := e.get("/messages/msg_doesnotexist")
		if a.status != 404 {
			t.Fatalf("status %d", a.status)
		}
		seen[checkErrorEnvelope(t, a)] = true
	}
	if len(seen) != 3 {
		t.Fatalf("envelopes seen: %v, want all three", seen)
	}
	a := e.get("/messages")
	if checkErrorEnvelope(t, a) != "details" {
		t.Fatalf("validation error not in the details envelope: %s", a.body)
	}
}

func TestDetailNotFound(t *testing.T) {
	for _, shape := range shapes {
		e := newEnv(t, Options{Seed: 1, MessageCounts: []int{3}, Shape: shape})
		truth := e.sim.Truth()
		e.mustGet("/messages/"+truth[2].ID, 200)
		for _, id := range []string{"msg_0123456789abcdef", "00000000-0000-4000-8000-000000000000", "whatever", strings.ToUpper(truth[0].ID)} {
			if a := e.get("/messages/" + id); a.status != 404 {
				t.Errorf("%s: GET /messages/%s: %d, want 404", shape, id, a.status)
			}
		}
		// a position beyond the end of the conversation
		if a := e.get("/messages/" + e.sim.messageID(0, 3)); a.status != 404 {
			t.Errorf("%s: message past the end: %d", shape, a.status)
		}
	}
}

func TestAuthModes(t *testing.T) {
	const key = "k-123"
	bearer := map[string]string{"Authorization": "Bearer " + key}
	apiKey := map[string]string{"api_key": key}
	both := map[string]string{"Authorization": "Bearer " + key, "api_key": key}
	wrongBearer := map[string]string{"Authorization": "Bearer nope", "api_key": key}
	lower := map[string]string{"Authorization": "bearer " + key}
	backoffice := map[string]string{"Authorization": "Bearer bo", "access_token": "bo"}
	cases := []struct {
		mode AuthMode
		hdr  map[string]string
		want int
	}{
		{AuthBearer, bearer, 200}, {AuthBearer, lower, 200}, {AuthBearer, apiKey, 401}, {AuthBearer, nil, 401}, {AuthBearer, backoffice, 401},
		{AuthAPIKey, apiKey, 200}, {AuthAPIKey, bearer, 401}, {AuthAPIKey, map[string]string{"api_key": "nope"}, 401},
		{AuthBoth, both, 200}, {AuthBoth, bearer, 401}, {AuthBoth, apiKey, 401}, {AuthBoth, wrongBearer, 401},
		{AuthAny, bearer, 200}, {AuthAny, apiKey, 200}, {AuthAny, both, 200}, {AuthAny, wrongBearer, 200}, {AuthAny, nil, 401}, {AuthAny, backoffice, 401},
	}
	for _, tc := range cases {
		e := newEnv(t, Options{Seed: 1, MessageCounts: []int{1}, Auth: tc.mode, APIKey: key, BackofficeToken: "bo"})
		conv := e.sim.ConversationIDs()[0]
		id := e.sim.Truth()[0].ID
		for _, path := range []string{listPath(conv), "/messages/" + id} {
			a := request(e.api.URL, "GET", path, tc.hdr, "")
			if a.status != tc.want {
				t.Errorf("auth %s with %v on %s: %d, want %d", tc.mode, tc.hdr, path, a.status, tc.want)
			}
			if a.status == 401 {
				checkErrorEnvelope(t, a)
			}
		}
		a := request(e.api.URL, "POST", "/messages/whatsapp", tc.hdr, `{"conversation_id":"`+conv+`","receiver":"+628123456789","message":"hi"}`)
		if a.status != tc.want {
			t.Errorf("auth %s with %v on send: %d, want %d", tc.mode, tc.hdr, a.status, tc.want)
		}
	}
}

func TestBackofficeAuth(t *testing.T) {
	cases := []struct {
		mode string
		hdr  map[string]string
		want int
	}{
		{BackofficeAccessToken, map[string]string{"access_token": "bo"}, 200},
		{BackofficeAccessToken, map[string]string{"Authorization": "Bearer bo"}, 401},
		{BackofficeAccessToken, map[string]string{"access_token": "key"}, 401},
		{BackofficeAccessToken, map[string]string{"api_key": "key", "Authorization": "Bearer key"}, 401},
		{BackofficeBearer, map[string]string{"Authorization": "Bearer bo"}, 200},
		{BackofficeBearer, map[string]string{"access_token": "bo"}, 401},
		{BackofficeBearer, map[string]string{"Authorization": "Bearer key"}, 401},
		{BackofficeBearer, nil, 401},
	}
	for _, tc := range cases {
		e := newEnv(t, Options{Seed: 1, MessageCounts: []int{1}, APIKey: "key", BackofficeToken: "bo", BackofficeAuth: tc.mode})
		a := e.deleteConvs(tc.hdr, "conv_unknown")
		if a.status != tc.want {
			t.Errorf("backoffice %s with %v: %d, want %d: %s", tc.mode, tc.hdr, a.status, tc.want, a.body)
		}
		// the messages API does not accept the back-office token, nor serve the delete
		if a := request(e.api.URL, "GET", listPath(e.sim.ConversationIDs()[0]), map[string]string{"Authorization": "Bearer bo", "access_token": "bo"}, ""); a.status != 401 {
			t.Errorf("messages API accepted the back-office token: %d", a.status)
		}
	}
	if _, err := New(Options{APIKey: "same", BackofficeToken: "same"}); err == nil {
		t.Error("New accepted identical API key and back-office token")
	}
	// defaults per shape
	for shape, want := range map[Shape]string{ShapeDocumented: BackofficeBearer, ShapeReal: BackofficeAccessToken} {
		s, _ := New(Options{Shape: shape})
		if s.opts.BackofficeAuth != want {
			t.Errorf("default back-office auth for %s: %s", shape, s.opts.BackofficeAuth)
		}
	}
}

func TestDelete(t *testing.T) {
	for _, shape := range shapes {
		t.Run(string(shape), func(t *testing.T) {
			e := newEnv(t, Options{Seed: 9, MessageCounts: []int{5, 6, 7, 0}, Shape: shape, MaxDeleteBatch: 3})
			ids := e.sim.ConversationIDs()
			truth := truthByConv(e.sim)
			bo := e.backofficeHeader()

			a := e.deleteConvs(bo, ids[0], ids[1], ids[0])
			if a.status != 200 {
				t.Fatalf("delete: %d %s", a.status, a.body)
			}
			var res struct {
				Success bool `json:"success"`
				Data    struct {
					Deleted         int      `json:"deleted"`
					ConversationIDs []string `json:"conversation_ids"`
				} `json:"data"`
			}
			if err := json.Unmarshal(a.body, &res); err != nil || !res.Success || res.Data.Deleted != 2 || !slices.Equal(res.Data.ConversationIDs, ids[:2]) {
				t.Fatalf("delete answer %s", a.body)
			}
			for _, c := range ids[:2] {
				if a := e.get(listPath(c)); a.status != 404 {
					t.Errorf("list of deleted conversation: %d", a.status)
				}
				for _, m := range truth[c] {
					if a := e.get("/messages/" + m.ID); a.status != 404 {
						t.Errorf("detail of a message of a deleted conversation: %d", a.status)
					}
				}
			}
			e.mustGet(listPath(ids[2]), 200)
			for _, m := range e.sim.Truth() {
				if m.ConversationID == ids[0] || m.ConversationID == ids[1] {
					t.Fatal("truth still holds deleted messages")
				}
			}
			// idempotent: already deleted and unknown ids are not errors
			a = e.deleteConvs(bo, ids[0], "conv_nope", ids[3])
			if a.status != 200 || !strings.Contains(compactJSON(a.body), `"deleted":1,"conversation_ids":["`+ids[3]+`"]`) {
				t.Fatalf("second delete: %d %s", a.status, a.body)
			}
			a = e.deleteConvs(bo, ids[0])
			if a.status != 200 || !strings.Contains(compactJSON(a.body), `"deleted":0,"conversation_ids":[]`) {
				t.Fatalf("repeat delete: %d %s", a.status, a.body)
			}
			// validation
			for name, body := range map[string]string{
				"empty list":  `{"conversation_ids":[]}`,
				"too many":    `{"conversation_ids":["a","b","c","d"]}`,
				"missing":     `{}`,
				"not strings": `{"conversation_ids":[1,2]}`,
				"not json":    `{"conversation_ids":`,
			} {
				a := request(e.back.URL, "POST", "/v1/backoffice/conversations-delete", bo, body)
				if a.status != 400 || checkErrorEnvelope(t, a) != "details" {
					t.Errorf("%s: %d %s", name, a.status, a.body)
				}
			}
			c := e.sim.Counts()
			if c.Status(EndpointDelete, 200) != 3 || c.Status(EndpointDelete, 400) != 5 {
				t.Errorf("delete counts %v", c.ByEndpoint[EndpointDelete])
			}
		})
	}
}

func statusRank(s string) int {
	return map[string]int{"sent": 0, "delivered": 1, "read": 2, "failed": 1}[s]
}

func TestStatusesProgressWithAdvance(t *testing.T) {
	e := newEnv(t, Options{Seed: 21, Conversations: 60, MeanMessages: 15, Shape: ShapeReal})
	prev := map[string]TruthMessage{}
	changed := 0
	steps := []time.Duration{0, 30 * time.Second, 10 * time.Minute, 3 * time.Hour, 2 * 24 * time.Hour, 30 * 24 * time.Hour}
	var last []TruthMessage
	for _, d := range steps {
		e.sim.Advance(d)
		now := e.sim.Now()
		last = e.sim.Truth()
		for _, m := range last {
			switch {
			case m.Direction == "inbound":
				// unread (delivered in this shape) until read; see status_test.go
				unread := m.Status == "delivered" && m.ReadAt == nil
				read := m.Status == "read" && m.ReadAt != nil && !m.ReadAt.After(now) && m.ReadAt.After(m.Timestamp)
				if (!unread && !read) || m.DeliveredAt != nil {
					t.Fatalf("inbound message %s: %s %v %v", m.ID, m.Status, m.DeliveredAt, m.ReadAt)
				}
			case m.Status == "sent" || m.Status == "failed":
				if m.DeliveredAt != nil || m.ReadAt != nil {
					t.Fatalf("%s message with status times", m.Status)
				}
			case m.Status == "delivered":
				if m.DeliveredAt == nil || m.ReadAt != nil || m.DeliveredAt.After(now) || !m.DeliveredAt.After(m.Timestamp) {
					t.Fatalf("delivered message %s: %v %v", m.ID, m.DeliveredAt, m.ReadAt)
				}
			case m.Status == "read":
				if m.DeliveredAt == nil || m.ReadAt == nil || m.ReadAt.After(now) || !m.ReadAt.After(*m.DeliveredAt) {
					t.Fatalf("read message %s: %v %v", m.ID, m.DeliveredAt, m.ReadAt)
				}
			default:
				t.Fatalf("status %q", m.Status)
			}
			if p, ok := prev[m.ID]; ok {
				if statusRank(m.Status) < statusRank(p.Status) || (p.Status == "failed" && m.Status != "failed") {
					t.Fatalf("status went back from %s to %s", p.Status, m.Status)
				}
				if p.Status != m.Status {
					changed++
				}
			}
			prev[m.ID] = m
		}
	}
	if changed < 10 {
		t.Fatalf("only %d status changes while the clock moved a month", changed)
	}
	// the detail answer agrees with the truth once reached
	checked := 0
	for _, m := range last {
		if m.Status != "read" || m.Direction != "outbound" || checked > 5 {
			continue
		}
		checked++
		d := e.mustGet("/messages/"+m.ID, 200)["data"].(map[string]any)
		da, _ := parseServedTime(d["delivered_at"].(string))
		ra, _ := parseServedTime(d["read_at"].(string))
		if d["status"] != "read" || !da.Equal(*m.DeliveredAt) || !ra.Equal(*m.ReadAt) {
			t.Fatalf("detail %v disagrees with truth %v %v", d, m.DeliveredAt, m.ReadAt)
		}
	}
	e.sim.Advance(-time.Hour) // ignored
}

// canonical maps a served item to the truth's fields, independently of the
// simulator's code. problem is the malformation seen, if any.
func canonical(t *testing.T, shape Shape, raw json.RawMessage, detail bool) (tm TruthMessage, problem string) {
	t.Helper()
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return tm, "not_object"
	}
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	obj := func(m map[string]any, k string) map[string]any { o, _ := m[k].(map[string]any); return o }
	when := func(k string) *time.Time {
		s, ok := m[k].(string)
		if !ok {
			return nil
		}
		t, ok := parseServedTime(s)
		if !ok {
			problem = "bad_timestamp"
			return nil
		}
		return &t
	}
	tm.ID, tm.ConversationID, tm.Status = str(m, "id"), str(m, "conversation_id"), str(m, "status")
	if detail {
		tm.DeliveredAt, tm.ReadAt = when("delivered_at"), when("read_at")
	}
	if shape == ShapeDocumented {
		tm.Direction, tm.Type = str(m, "direction"), str(m, "type")
		c := obj(m, "content")
		tm.Text, tm.MediaURL, tm.Caption, tm.Filename = str(c, "text"), str(c, "url"), str(c, "caption"), str(c, "filename")
		s := obj(m, "sender")
		tm.SenderName, tm.SenderPhone, tm.SenderID = str(s, "name"), str(s, "phone"), str(s, "user_id")
		tm.RecipientPhone = str(obj(m, "recipient"), "phone")
		tm.ReplyTo = str(m, "reply_to")
		if ts := when("timestamp"); ts != nil {
			tm.Timestamp = *ts
		}
	} else {
		tm.SenderType = str(m, "sent_by_type")
		tm.Direction = "outbound"
		if tm.SenderType == "user" {
			tm.Direction = "inbound"
		}
		tm.Type = str(m, "media_type")
		switch tm.Type {
		case "text", "interactive":
			tm.Text = str(m, "message")
		default:
			tm.Caption = str(m, "message")
		}
		tm.MediaURL = str(m, "media_url")
		ad := obj(m, "additional_data")
		tm.Filename, tm.ReplyTo = str(ad, "filename"), str(ad, "reply_to")
		tm.SenderName, tm.SenderID = str(m, "sent_by_name"), str(m, "sent_by")
		phone := str(obj(m, "contact"), "phone_number")
		if tm.Direction == "inbound" {
			tm.SenderPhone = phone
		} else {
			tm.RecipientPhone = phone
		}
		tm.IsTemplate, _ = m["is_template"].(bool)
		if ts := when("created_at"); ts != nil {
			tm.Timestamp = *ts
		}
		if _, ok := parseServedTime(str(m, "updated_at")); !ok {
			t.Fatalf("updated_at %q does not parse", str(m, "updated_at"))
		}
	}
	if problem == "" && tm.ID == "" {
		problem = "missing_id"
	}
	return tm, problem
}

func TestTruthMatchesServed(t *testing.T) {
	for _, shape := range shapes {
		t.Run(string(shape), func(t *testing.T) {
			e := newEnv(t, Options{Seed: 77, Conversations: 12, MeanMessages: 25, Shape: shape, MalformedRate: 0.08})
			e.sim.Advance(6 * time.Hour)
			truth := truthByConv(e.sim)
			problems, formats, types := map[string]int{}, map[int]bool{}, map[string]bool{}
			for _, conv := range e.sim.ConversationIDs() {
				items := walk(t, e, conv, 40)
				for i, raw := range items {
					want := truth[conv][i]
					types[want.Type] = true
					for _, detail := range []bool{false, true} {
						if detail {
							a := e.get("/messages/" + want.ID)
							if a.status != 200 {
								t.Fatalf("detail %s: %d", want.ID, a.status)
							}
							var d struct {
								Data json.RawMessage `json:"data"`
							}
							if err := json.Unmarshal(a.body, &d); err != nil {
								t.Fatal(err)
							}
							raw = d.Data
						}
						got, problem := canonical(t, shape, raw, detail)
						if problem != want.MalformedReason {
							t.Fatalf("message %s: served problem %q, truth says %q: %s", want.ID, problem, want.MalformedReason, raw)
						}
						if problem != "" {
							problems[problem]++
							continue
						}
						if shape == ShapeReal {
							var m map[string]any
							_ = json.Unmarshal(raw, &m)
							formats[timeFormatOf(m["created_at"].(string))] = true
						}
						w := want
						w.Position, w.Malformed, w.MalformedReason = 0, false, ""
						if !detail {
							w.DeliveredAt, w.ReadAt = nil, nil
							if shape == ShapeDocumented {
								w.Status, w.RecipientPhone = "", ""
							}
						}
						if !w.Timestamp.Equal(got.Timestamp) {
							t.Fatalf("time stamp %v served as %v: %s", w.Timestamp, got.Timestamp, raw)
						}
						got.Timestamp = w.Timestamp
						if !timesEqual(w.DeliveredAt, got.DeliveredAt) || !timesEqual(w.ReadAt, got.ReadAt) {
							t.Fatalf("status times %v %v served as %v %v", w.DeliveredAt, w.ReadAt, got.DeliveredAt, got.ReadAt)
						}
						got.DeliveredAt, got.ReadAt = w.DeliveredAt, w.ReadAt
						got.FailedAt, got.StatusAt = w.FailedAt, w.StatusAt // not served as such; status_test.go checks updated_at
						if got != w {
							t.Fatalf("served (detail=%v)\n%+v\ntruth\n%+v\n%s", detail, got, w, raw)
						}
					}
				}
			}
			if len(problems) != 3 {
				t.Errorf("malformations seen: %v", problems)
			}
			for _, typ := range []string{"text", "image", "video", "document", "audio", "sticker", "location", "interactive"} {
				if !types[typ] {
					t.Errorf("type %s never generated", typ)
				}
			}
			if shape == ShapeReal && len(formats) != 6 {
				t.Errorf("time formats seen: %v", formats)
			}
		})
	}
}

func timesEqual(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// timeFormatOf classifies a served time stamp (RFC3339 with Z and with an
// offset, with and without fraction, zoneless Jakarta, Postgres).
func timeFormatOf(s string) int {
	switch {
	case strings.HasSuffix(s, "+00") && strings.Contains(s, " "):
		return 5
	case strings.Contains(s, " "):
		return 4
	}
	k := 0
	if strings.HasSuffix(s, "Z") {
		k = 2
	}
	if strings.Contains(s, ".") {
		k++
	}
	return k
}

func TestHistoryShape(t *testing.T) {
	for _, shape := range shapes {
		s, err := New(Options{Seed: 4, Conversations: 40, MeanMessages: 30, Shape: shape})
		if err != nil {
			t.Fatal(err)
		}
		truth := s.Truth()
		sameSecond, fractions, inbound, outbound, replies := 0, 0, 0, 0, 0
		ids := make([]string, 0, len(truth))
		for i, m := range truth {
			ids = append(ids, m.ID)
			if m.Timestamp.Nanosecond() != 0 {
				fractions++
			}
			if !m.Timestamp.Before(s.opts.Start) {
				t.Fatalf("history message at %v, not before the start %v", m.Timestamp, s.opts.Start)
			}
			if m.Direction == "inbound" {
				inbound++
			} else {
				outbound++
			}
			if m.ReplyTo != "" {
				replies++
			}
			if i > 0 && truth[i-1].ConversationID == m.ConversationID {
				p := truth[i-1]
				if m.Timestamp.Before(p.Timestamp) {
					t.Fatalf("%s: time stamps decrease: %v then %v", shape, p.Timestamp, m.Timestamp)
				}
				if m.Timestamp.Truncate(time.Second).Equal(p.Timestamp.Truncate(time.Second)) {
					sameSecond++
				}
			}
		}
		if sameSecond < len(truth)/10 || inbound == 0 || outbound == 0 || replies == 0 {
			t.Errorf("%s: %d messages, %d share a second with the previous, %d in, %d out, %d replies", shape, len(truth), sameSecond, inbound, outbound, replies)
		}
		if (shape == ShapeReal) != (fractions > 0) {
			t.Errorf("%s: %d time stamps with a fraction", shape, fractions)
		}
		// ids are not in time order
		if slices.IsSorted(ids) {
			t.Errorf("%s: ids sorted like time", shape)
		}
		inOrder := 0
		for i := 1; i < len(ids); i++ {
			if ids[i] > ids[i-1] {
				inOrder++
			}
		}
		if f := float64(inOrder) / float64(len(ids)); f > 0.6 || f < 0.4 {
			t.Errorf("%s: %.2f of consecutive ids increase", shape, f)
		}
	}
}

func TestMessageCountsAreHeavyTailed(t *testing.T) {
	s, err := New(Options{Seed: 8, Conversations: 3000, MeanMessages: 20})
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]int, 0, 3000)
	total := 0
	for _, c := range s.convs {
		counts = append(counts, c.gen)
		total += c.gen
	}
	sort.Ints(counts)
	mean := float64(total) / 3000
	if counts[0] != 0 || counts[1500] >= 20 || counts[2999] < 1000 || mean < 14 || mean > 28 {
		t.Fatalf("counts: min %d median %d max %d mean %.1f", counts[0], counts[1500], counts[2999], mean)
	}
}

func TestRateLimit(t *testing.T) {
	for _, retryAfter := range []bool{false, true} {
		t.Run(fmt.Sprintf("retry-after=%v", retryAfter), func(t *testing.T) {
			clk := newFakeClock()
			e := newEnv(t, Options{Seed: 1, MessageCounts: []int{3}, RatePerMinute: 3, RetryAfter: retryAfter, Now: clk.Now})
			conv := e.sim.ConversationIDs()[0]
			start := clk.Now()
			reset := strconv.FormatInt(start.Add(time.Minute).Unix(), 10)
			for i := range 3 {
				a := e.get(listPath(conv))
				if a.status != 200 || a.header.Get("X-RateLimit-Limit") != "3" ||
					a.header.Get("X-RateLimit-Remaining") != strconv.Itoa(2-i) || a.header.Get("X-RateLimit-Reset") != reset {
					t.Fatalf("request %d: %d %v", i, a.status, a.header)
				}
				clk.Add(10 * time.Second)
			}
			a := e.get(listPath(conv))
			if a.status != 429 || a.header.Get("X-RateLimit-Remaining") != "0" || a.header.Get("X-RateLimit-Reset") != reset {
				t.Fatalf("4th request: %d %v", a.status, a.header)
			}
			checkErrorEnvelope(t, a)
			if got := a.header.Get("Retry-After"); retryAfter != (got == "30") {
				t.Fatalf("Retry-After %q (want it: %v)", got, retryAfter)
			}
			if e.sim.Counts().RateLimited != 1 {
				t.Fatalf("counts %+v", e.sim.Counts())
			}
			// the back-office shares the limit
			if a := e.deleteConvs(e.backofficeHeader(), "nope"); a.status != 429 {
				t.Fatalf("back-office not limited: %d", a.status)
			}
			clk.Add(30 * time.Second) // the window ends
			a = e.get(listPath(conv))
			if a.status != 200 || a.header.Get("X-RateLimit-Remaining") != "2" ||
				a.header.Get("X-RateLimit-Reset") != strconv.FormatInt(clk.Now().Add(time.Minute).Unix(), 10) {
				t.Fatalf("new window: %d %v", a.status, a.header)
			}
		})
	}
	t.Run("daily", func(t *testing.T) {
		clk := newFakeClock()
		e := newEnv(t, Options{Seed: 1, MessageCounts: []int{3}, RatePerDay: 4, RetryAfter: true, Now: clk.Now})
		conv := e.sim.ConversationIDs()[0]
		for i := range 4 {
			if a := e.get(listPath(conv)); a.status != 200 || a.header.Get("X-RateLimit-Limit") != "" {
				t.Fatalf("request %d: %d %v", i, a.status, a.header)
			}
			clk.Add(5 * time.Minute)
		}
		a := e.get(listPath(conv))
		// 10:20 -> midnight UTC
		if a.status != 429 || a.header.Get("Retry-After") != strconv.Itoa(13*3600+40*60) {
			t.Fatalf("over the daily cap: %d %v", a.status, a.header)
		}
		clk.Add(14 * time.Hour)
		if a := e.get(listPath(conv)); a.status != 200 {
			t.Fatalf("next day: %d", a.status)
		}
	})
	t.Run("unlimited", func(t *testing.T) {
		e := newEnv(t, Options{Seed: 1, MessageCounts: []int{3}})
		if a := e.get(listPath(e.sim.ConversationIDs()[0])); a.header.Get("X-RateLimit-Limit") != "" {
			t.Fatal("rate headers without a limit")
		}
	})
}

func TestFaults(t *testing.T) {
	t.Run("5xx", func(t *testing.T) {
		e := newEnv(t, Options{Seed: 1, MessageCounts: []int{3}, Fault5xx: 1})
		seen := map[int]bool{}
		for range 30 {
			a := e.get(listPath(e.sim.ConversationIDs()[0]))
			if a.status != 500 && a.status != 502 && a.status != 503 {
				t.Fatalf("status %d", a.status)
			}
			checkErrorEnvelope(t, a)
			seen[a.status] = true
		}
		if len(seen) != 3 {
			t.Fatalf("statuses %v", seen)
		}
	})
	t.Run("drop", func(t *testing.T) {
		e := newEnv(t, Options{Seed: 1, MessageCounts: []int{3}, FaultDrop: 1})
		a := e.get(listPath(e.sim.ConversationIDs()[0]))
		if a.err == nil {
			t.Fatalf("dropped connection gave status %d", a.status)
		}
		if e.sim.Counts().Status(EndpointList, 0) < 1 {
			t.Fatalf("counts %+v", e.sim.Counts())
		}
	})
	t.Run("truncate", func(t *testing.T) {
		e := newEnv(t, Options{Seed: 1, MessageCounts: []int{3}, FaultTruncate: 1})
		for _, path := range []string{listPath(e.sim.ConversationIDs()[0]), "/messages/" + e.sim.Truth()[0].ID} {
			a := e.get(path)
			var v any
			if a.err != nil || a.status != 200 || json.Unmarshal(a.body, &v) == nil || len(a.body) < 10 {
				t.Fatalf("truncated answer: %v %d %q", a.err, a.status, a.body)
			}
		}
		// errors are not truncated
		if a := e.get("/messages/nope"); a.status != 404 {
			t.Fatalf("status %d", a.status)
		} else {
			checkErrorEnvelope(t, a)
		}
	})
	t.Run("mixed", func(t *testing.T) {
		e := newEnv(t, Options{Seed: 1, MessageCounts: []int{30}, Fault5xx: 0.2, FaultDrop: 0.2, FaultTruncate: 0.2, Latency: 2 * time.Millisecond})
		id := e.sim.Truth()[0].ID
		t0 := time.Now()
		kinds := map[string]int{}
		for range 60 {
			a := e.get("/messages/" + id)
			var v any
			switch {
			case a.err != nil:
				kinds["drop"]++
			case a.status >= 500:
				kinds["5xx"]++
			case json.Unmarshal(a.body, &v) != nil:
				kinds["truncated"]++
			default:
				kinds["ok"]++
			}
		}
		if len(kinds) != 4 {
			t.Fatalf("fault kinds seen %v", kinds)
		}
		if time.Since(t0) < 60*2*time.Millisecond {
			t.Fatal("latency not applied")
		}
		// the admin endpoints are neither faulty nor counted
		before := e.sim.Counts().Total
		for range 20 {
			if a := request(e.api.URL, "GET", "/_sim/counts", nil, ""); a.status != 200 {
				t.Fatalf("admin endpoint: %v %d", a.err, a.status)
			}
		}
		if e.sim.Counts().Total != before {
			t.Fatal("admin requests counted")
		}
	})
}

// script replays the same requests against a server and records everything.
func script(t *testing.T, o Options) []string {
	e := newEnv(t, o)
	var out []string
	rec := func(a answer) {
		out = append(out, fmt.Sprintf("%v|%d|%s|%s|%s", a.err != nil, a.status, a.header.Get("X-RateLimit-Remaining"), a.header.Get("Retry-After"), a.body))
	}
	ids := e.sim.ConversationIDs()
	for _, c := range ids {
		before := ""
		for range 3 {
			path := listPath(c, "limit", "5")
			if before != "" {
				path = listPath(c, "limit", "5", "before", before)
			}
			a := e.get(path)
			rec(a)
			var p struct {
				Pagination struct {
					Before string `json:"before"`
				} `json:"pagination"`
			}
			if json.Unmarshal(a.body, &p) == nil && p.Pagination.Before != "" {
				before = p.Pagination.Before
			}
		}
	}
	for _, m := range e.sim.Truth()[:20] {
		rec(e.get("/messages/" + m.ID))
	}
	rec(e.post("/messages/whatsapp", `{"inbox_id":"inbox_x","to":"+628111222333","type":"text","content":{"text":"halo"}}`))
	e.sim.Advance(time.Hour)
	rec(e.deleteConvs(e.backofficeHeader(), ids[0]))
	var sb strings.Builder
	_ = e.sim.WriteTruth(&sb)
	out = append(out, sb.String())
	return out
}

func TestDeterminism(t *testing.T) {
	for _, shape := range shapes {
		clk := newFakeClock()
		o := Options{Seed: 42, Conversations: 8, MeanMessages: 30, Shape: shape, MalformedRate: 0.05, LiveRate: 0.3,
			Fault5xx: 0.05, FaultTruncate: 0.05, RatePerMinute: 1000, RetryAfter: true, Now: clk.Now}
		a, b := script(t, o), script(t, o)
		if !slices.Equal(a, b) {
			for i := range a {
				if a[i] != b[i] {
					t.Fatalf("%s: answer %d differs:\n%.300s\n%.300s", shape, i, a[i], b[i])
				}
			}
		}
		o.Seed = 43
		if c := script(t, o); slices.Equal(a, c) {
			t.Fatalf("%s: another seed served the same bytes", shape)
		}
	}
}

func TestLiveTraffic(t *testing.T) {
	e := newEnv(t, Options{Seed: 6, MessageCounts: []int{120}, LiveRate: 1, Shape: ShapeReal})
	conv := e.sim.ConversationIDs()[0]
	before := e.sim.Truth()
	got := walk(t, e, conv, 10)
	after := e.sim.Truth()
	if len(after) < len(before)+13 || len(after) > len(before)+39 {
		t.Fatalf("%d messages before, %d after 13 list calls with live rate 1", len(before), len(after))
	}
	// live messages arrive at the newest end: the cursor walk is unaffected
	// beyond the first page and sees every message once
	seen := map[string]bool{}
	for _, raw := range got {
		id := itemID(raw)
		if seen[id] {
			t.Fatal("message served twice")
		}
		seen[id] = true
	}
	for _, m := range after {
		if !seen[m.ID] && m.Position < len(before) {
			t.Fatalf("historical message %d missed", m.Position)
		}
	}
	// AddMessages: at the simulated clock, after everything else
	e.sim.Advance(90 * time.Minute)
	e.sim.AddMessages(conv, 5)
	e.sim.AddMessages("nope", 5)
	final := e.sim.Truth()
	if len(final) != len(after)+5 {
		t.Fatalf("AddMessages added %d", len(final)-len(after))
	}
	for i, m := range final[len(after):] {
		if !m.Timestamp.Equal(e.sim.Now()) || m.Position != len(after)+i {
			t.Fatalf("live message at %v position %d", m.Timestamp, m.Position)
		}
	}
}

func TestSend(t *testing.T) {
	for _, shape := range shapes {
		t.Run(string(shape), func(t *testing.T) {
			e := newEnv(t, Options{Seed: 12, MessageCounts: []int{4, 2}, Shape: shape})
			ids := e.sim.ConversationIDs()
			truth := e.sim.Truth()
			phone := truth[0].SenderPhone // message 0 is inbound
			if phone == "" {
				t.Fatal("first message has no sender phone")
			}
			type sendResp struct {
				Success bool `json:"success"`
				Data    struct {
					MessageID string `json:"message_id"`
					Status    string `json:"status"`
					To        string `json:"to"`
					Timestamp string `json:"timestamp"`
				} `json:"data"`
			}
			send := func(body string, want int) sendResp {
				t.Helper()
				a := e.post("/messages/whatsapp", body)
				if a.status != want {
					t.Fatalf("send %s: %d %s", body, a.status, a.body)
				}
				var r sendResp
				if want == 200 {
					if err := json.Unmarshal(a.body, &r); err != nil || !r.Success || r.Data.Status != "sent" || r.Data.MessageID == "" {
						t.Fatalf("send answer %s", a.body)
					}
					if ts, err := time.Parse(time.RFC3339, r.Data.Timestamp); err != nil || !ts.Equal(e.sim.Now()) {
						t.Fatalf("send time stamp %s", r.Data.Timestamp)
					}
				} else if want == 400 && checkErrorEnvelope(t, a) != "details" {
					t.Fatalf("validation error envelope %s", a.body)
				}
				return r
			}
			// documented body to an existing customer
			r := send(`{"inbox_id":"inbox_abc123","to":"`+phone+`","type":"document","content":{"url":"https://x.test/a.pdf","filename":"a.pdf","caption":"see"},"reply_to":"`+truth[1].ID+`"}`, 200)
			if r.Data.To != phone {
				t.Fatalf("to %s", r.Data.To)
			}
			d := e.mustGet("/messages/"+r.Data.MessageID, 200)["data"].(map[string]any)
			if d["conversation_id"] != ids[0] || d["status"] != "sent" {
				t.Fatalf("sent message detail %v", d)
			}
			p := decodePage(t, e.get(listPath(ids[0])).body)
			if itemID(p.items[len(p.items)-1]) != r.Data.MessageID {
				t.Fatal("sent message is not the newest of its conversation")
			}
			got := e.sim.Truth()
			var tm TruthMessage
			for _, m := range got {
				if m.ID == r.Data.MessageID {
					tm = m
				}
			}
			if tm.Direction != "outbound" || tm.Type != "document" || tm.MediaURL != "https://x.test/a.pdf" || tm.Filename != "a.pdf" ||
				tm.Caption != "see" || tm.ReplyTo != truth[1].ID || tm.RecipientPhone != phone || tm.Status != "sent" {
				t.Fatalf("truth of the sent message %+v", tm)
			}
			// statuses progress after a send
			e.sim.Advance(4 * 24 * time.Hour)
			d = e.mustGet("/messages/"+r.Data.MessageID, 200)["data"].(map[string]any)
			if d["status"] == "sent" && statusRank(d["status"].(string)) == 0 {
				t.Logf("sent message still sent after 4 days (allowed for a few): %v", d)
			}
			// documented body to a new customer creates a conversation
			r = send(`{"inbox_id":"inbox_new","to":"+6289999999999","type":"text","content":{"text":"Halo!"}}`, 200)
			all := e.sim.ConversationIDs()
			if len(all) != 3 {
				t.Fatalf("%d conversations after a send to a new customer", len(all))
			}
			p = decodePage(t, e.get(listPath(all[2])).body)
			if len(p.items) != 1 || itemID(p.items[0]) != r.Data.MessageID {
				t.Fatalf("new conversation holds %d items", len(p.items))
			}
			// a second send to the same number goes to the same conversation
			send(`{"inbox_id":"inbox_new","to":"+6289999999999","type":"image","content":{"url":"http://x.test/i.jpg"}}`, 200)
			if len(e.sim.ConversationIDs()) != 3 {
				t.Fatal("second send created another conversation")
			}
			// real body
			r = send(`{"conversation_id":"`+ids[1]+`","receiver":"628123456789","message":"Pesanan sudah dikirim","media_type":"text"}`, 200)
			if r.Data.To != "628123456789" {
				t.Fatalf("to %s", r.Data.To)
			}
			d = e.mustGet("/messages/"+r.Data.MessageID, 200)["data"].(map[string]any)
			if d["conversation_id"] != ids[1] {
				t.Fatalf("real send landed in %v", d["conversation_id"])
			}
			send(`{"conversation_id":"`+ids[1]+`","receiver":"628123456789","message":"foto","media_type":"image","file_url":"https://x.test/f.jpg"}`, 200)
			send(`{"conversation_id":"conv_nope","receiver":"628123456789","message":"x"}`, 404)
			// validation
			for _, body := range []string{
				`not json`,
				`[]`,
				`{}`,
				`{"inbox_id":"i","to":"0812","type":"text","content":{"text":"x"}}`,
				`{"inbox_id":"i","to":"+628123456789","type":"sticker","content":{"url":"https://x"}}`,
				`{"inbox_id":"i","to":"+628123456789","type":"text","content":{}}`,
				`{"inbox_id":"i","to":"+628123456789","type":"text"}`,
				`{"inbox_id":"i","to":"+628123456789","type":"text","content":"hi"}`,
				`{"inbox_id":"i","to":"+628123456789","type":"image","content":{"url":"ftp://x/y"}}`,
				`{"inbox_id":5,"to":"+628123456789","type":"text","content":{"text":"x"}}`,
				`{"to":"+628123456789","type":"text","content":{"text":"x"}}`,
				`{"inbox_id":"i","to":"` + phone + `","type":"text","content":{"text":"x"},"reply_to":"` + truth[4].ID + `"}`,
				`{"inbox_id":"i","to":"` + phone + `","type":"text","content":{"text":"x"},"reply_to":"bogus"}`,
				`{"conversation_id":"` + ids[1] + `","receiver":"628123456789"}`,
				`{"conversation_id":"` + ids[1] + `","receiver":"abc","message":"x"}`,
				`{"conversation_id":"` + ids[1] + `","message":"x"}`,
				`{"conversation_id":"` + ids[1] + `","receiver":"628123456789","media_type":"image"}`,
				`{"conversation_id":"` + ids[1] + `","receiver":"628123456789","media_type":"gif","file_url":"https://x/y"}`,
			} {
				send(body, 400)
			}
			if n := e.sim.Counts().Status(EndpointSend, 400); n != 18 {
				t.Fatalf("%d send 400s", n)
			}
		})
	}
}

func TestAdminEndpoints(t *testing.T) {
	e := newEnv(t, Options{Seed: 2, MessageCounts: []int{3, 1}, RatePerMinute: 1})
	conv := e.sim.ConversationIDs()[1]
	e.mustGet(listPath(conv), 200)
	admin := func(method, path string, want int) []byte {
		t.Helper()
		a := request(e.api.URL, method, path, nil, "")
		if a.status != want {
			t.Fatalf("%s %s: %d %s", method, path, a.status, a.body)
		}
		return a.body
	}
	var c Counts
	if err := json.Unmarshal(admin("GET", "/_sim/counts", 200), &c); err != nil || c.Status(EndpointList, 200) != 1 || c.Total != 1 {
		t.Fatalf("counts %+v %v", c, err)
	}
	admin("POST", "/_sim/advance?d=90m", 200)
	if !e.sim.Now().Equal(DefaultStart.Add(90 * time.Minute)) {
		t.Fatalf("clock %v", e.sim.Now())
	}
	admin("POST", "/_sim/advance?d=soon", 400)
	admin("POST", "/_sim/add?conversation_id="+conv+"&n=5", 200)
	admin("POST", "/_sim/add?conversation_id=nope&n=5", 404)
	admin("POST", "/_sim/add?conversation_id="+conv+"&n=x", 400)
	lines := strings.Split(strings.TrimSpace(string(admin("GET", "/_sim/truth", 200))), "\n")
	if len(lines) != 3+1+5 {
		t.Fatalf("%d truth lines", len(lines))
	}
	var tm TruthMessage
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &tm); err != nil || !tm.Timestamp.Equal(e.sim.Now()) {
		t.Fatalf("truth line %s: %v", lines[len(lines)-1], err)
	}
	admin("POST", "/_sim/reset-counts", 200)
	if c := e.sim.Counts(); c.Total != 0 || len(c.ByEndpoint) != 0 {
		t.Fatalf("counts after reset %+v", c)
	}
	// counts by endpoint and status
	e.get(listPath(conv)) // 429: limit 1 per minute already used
	if c := e.sim.Counts(); c.RateLimited != 1 || c.Status(EndpointList, 429) != 1 || c.Endpoint(EndpointList) != 1 {
		t.Fatalf("counts %+v", c)
	}
}

func TestOptionsValidation(t *testing.T) {
	for name, o := range map[string]Options{
		"shape":       {Shape: "nested"},
		"auth":        {Auth: "basic"},
		"backoffice":  {BackofficeAuth: "cookie"},
		"negative":    {Conversations: -1},
		"count":       {MessageCounts: []int{-1}},
		"probability": {Fault5xx: 1.5},
		"sum":         {Fault5xx: 0.5, FaultDrop: 0.4, FaultTruncate: 0.2},
		"rate":        {RatePerMinute: -1},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New accepted %+v", name, o)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	e := newEnv(t, Options{Seed: 31, Conversations: 20, MeanMessages: 40, Shape: ShapeReal, LiveRate: 0.2, MalformedRate: 0.02, Fault5xx: 0.05, FaultTruncate: 0.05, FaultDrop: 0.02})
	ids := e.sim.ConversationIDs()
	truth := e.sim.Truth()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				switch (g + i) % 5 {
				case 0:
					e.get(listPath(ids[(g*7+i)%len(ids)], "limit", "20"))
				case 1:
					e.get("/messages/" + truth[(g*31+i*7)%len(truth)].ID)
				case 2:
					e.post("/messages/whatsapp", fmt.Sprintf(`{"conversation_id":"%s","receiver":"628123456789","message":"m%d"}`, ids[(g+i)%len(ids)], i))
				case 3:
					e.sim.Advance(time.Minute)
					e.sim.AddMessages(ids[i%len(ids)], 1)
				default:
					if i == 39 && g == 0 {
						e.deleteConvs(e.backofficeHeader(), ids[0])
					}
					_ = e.sim.Counts()
				}
			}
		}()
	}
	wg.Wait()
	var sb strings.Builder
	if err := e.sim.WriteTruth(&sb); err != nil {
		t.Fatal(err)
	}
}
