package cekat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// EndpointConversations is the New Open API's conversation list.
const EndpointConversations = "conversations"

// Conversation is one item of the New Open API's conversation list: what
// the archive keeps of a conversation besides its messages.
type Conversation struct {
	ID            string
	InboxID       string
	InboxName     string
	ContactID     string
	ContactName   string
	ContactPhone  string
	PlatformType  string
	StageStatus   string
	HandledByID   string
	HandledByName string
	Labels        []string // label names
	// LastMessageAt is when the newest message was created; nil when the
	// answer does not say. LastMessageKnown says the answer had a
	// last_message member at all (null for a conversation without messages).
	LastMessageAt    *time.Time
	LastMessageKnown bool
	LastMessage      string
	CreatedAt        *time.Time
	ResolvedAt       *time.Time
	Raw              json.RawMessage
}

// ConversationCursor is the New Open API's cursor, passed back verbatim.
type ConversationCursor struct {
	ID string
	TS string
}

// ConversationFilter narrows the conversation list.
type ConversationFilter struct {
	InboxID     string
	StageStatus string // assigned, resolved or pending
	Limit       int    // per page; the API's default is 10
}

// ConversationPage is one answer of the conversation list.
type ConversationPage struct {
	Conversations []Conversation
	Bad           []*DecodeError
	// Next is where the next page starts; nil on the last page.
	Next *ConversationCursor
}

// ListConversations returns one page of the workspace's conversations,
// from the first when cursor is nil.
func (c *Client) ListConversations(ctx context.Context, f ConversationFilter, cursor *ConversationCursor) (*ConversationPage, error) {
	q := url.Values{}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.InboxID != "" {
		q.Set("inbox_id", f.InboxID)
	}
	if f.StageStatus != "" {
		q.Set("stage_status", f.StageStatus)
	}
	if cursor != nil {
		q.Set("cursor_id", cursor.ID)
		q.Set("cursor_ts", cursor.TS)
	}
	req := request{endpoint: EndpointConversations, method: http.MethodGet, base: c.openAPI, path: "/conversations", query: q, retry: true}
	data, metadata, err := c.openEnvelope(ctx, req)
	if err != nil {
		return nil, err
	}
	var meta struct {
		NextCursor json.RawMessage `json:"next_cursor"`
	}
	if !isNull(metadata) {
		if err := json.Unmarshal(metadata, &meta); err != nil {
			return nil, req.fail(0, nil, fmt.Errorf("%w: metadata: %v", ErrUnexpectedShape, err), KindPermanent)
		}
	}
	var items []json.RawMessage
	if !isNull(data) {
		if err := json.Unmarshal(data, &items); err != nil {
			return nil, req.fail(0, nil, fmt.Errorf("%w: data is not an array", ErrUnexpectedShape), KindPermanent)
		}
	}
	page := &ConversationPage{Conversations: make([]Conversation, 0, len(items))}
	for i, item := range items {
		conv, err := DecodeConversation(item, c.opts.Location)
		if err != nil {
			var de *DecodeError
			if errors.As(err, &de) {
				de.Index = i
				page.Bad = append(page.Bad, de)
			}
			continue
		}
		page.Conversations = append(page.Conversations, conv)
	}
	if !isNull(meta.NextCursor) {
		var nc map[string]json.RawMessage
		if err := json.Unmarshal(meta.NextCursor, &nc); err != nil {
			return nil, req.fail(0, nil, fmt.Errorf("%w: next_cursor is not an object", ErrUnexpectedShape), KindPermanent)
		}
		next := &ConversationCursor{ID: fields(nc).str("cursor_id"), TS: fields(nc).str("cursor_ts")}
		if next.ID != "" || next.TS != "" {
			page.Next = next
		}
	}
	return page, nil
}

// DecodeConversation turns one item of the conversation list into a
// Conversation. Only the id is required.
func DecodeConversation(raw json.RawMessage, loc *time.Location) (Conversation, error) {
	raw = bytes.TrimSpace(raw)
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return Conversation{}, &DecodeError{Raw: raw, Err: errors.New("conversation is not a JSON object")}
	}
	f := fields(obj)
	c := Conversation{ID: f.str("id"), Raw: append(json.RawMessage(nil), raw...)}
	if c.ID == "" {
		return Conversation{}, &DecodeError{Raw: raw, Err: errors.New("conversation without an id")}
	}
	c.InboxID, c.InboxName = f.str("inbox_id"), f.str("inbox_name")
	c.ContactID, c.ContactName, c.ContactPhone = f.str("contact_id"), f.str("contact_name"), f.str("contact_phone")
	c.PlatformType, c.StageStatus = f.str("platform_type"), f.str("stage_status")
	c.HandledByID, c.HandledByName = f.str("handled_by_id"), f.str("handled_by_name")
	var labels []map[string]json.RawMessage
	if json.Unmarshal(obj["labels"], &labels) == nil {
		for _, l := range labels {
			if name := fields(l).str("name"); name != "" {
				c.Labels = append(c.Labels, name)
			}
		}
	}
	optTime := func(o fields, key string) *time.Time {
		if !o.has(key) || isNull(o[key]) {
			return nil
		}
		t, err := parseTimeJSON(o[key], loc)
		if err != nil {
			return nil
		}
		return &t
	}
	_, c.LastMessageKnown = obj["last_message"] // null: no message yet
	last := f.object("last_message")
	c.LastMessage = last.str("message")
	c.LastMessageAt = optTime(last, "created_at")
	c.CreatedAt = optTime(f, "created_at")
	c.ResolvedAt = optTime(f, "resolved_at")
	return c, nil
}

// openEnvelope makes a New Open API call and opens its envelope {success, data, metadata}: a body
// that is not one, or says success false, is the call's failure.
func (c *Client) openEnvelope(ctx context.Context, req request) (data, metadata json.RawMessage, err error) {
	body, err := c.do(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	var w struct {
		Success  *bool           `json:"success"`
		Data     json.RawMessage `json:"data"`
		Metadata json.RawMessage `json:"metadata"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, nil, req.fail(0, nil, fmt.Errorf("%w: %v", ErrUnexpectedShape, err), KindPermanent)
	}
	if w.Success != nil && !*w.Success {
		return nil, nil, req.failBody(http.StatusOK, body, KindPermanent)
	}
	return w.Data, w.Metadata, nil
}
