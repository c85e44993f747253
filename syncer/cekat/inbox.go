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
)

// EndpointInbox is the New Open API's message list, GET /api/messages:
// the messages of a whole workspace (or inbox), page-numbered.
const EndpointInbox = "inbox"

// InboxFilter chooses a page of GET /api/messages.
type InboxFilter struct {
	InboxID string // "" for every inbox
	Limit   int    // per page, at most 100
	Page    int    // from 1
}

// InboxPage is one answer of GET /api/messages. Its order is not
// documented: Messages are as the API sent them, and the caller decides
// from their times what the order is.
type InboxPage struct {
	Messages []Message
	Bad      []*DecodeError
	// From metadata.pagination; zero when the answer does not say.
	CurrentPage int
	TotalPages  int
	TotalItems  int
}

// ListInbox returns one page of GET /api/messages. Items are in the flat
// shape and carry their conversation_id; an item without one is bad.
func (c *Client) ListInbox(ctx context.Context, f InboxFilter) (*InboxPage, error) {
	q := url.Values{}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Page > 0 {
		q.Set("page", strconv.Itoa(f.Page))
	}
	if f.InboxID != "" {
		q.Set("inbox_id", f.InboxID)
	}
	req := request{endpoint: EndpointInbox, method: http.MethodGet, base: c.openAPI, path: "/messages", query: q, retry: true}
	data, metadata, err := c.openEnvelope(ctx, req)
	if err != nil {
		return nil, err
	}
	var meta struct {
		Pagination *struct {
			CurrentPage json.RawMessage `json:"current_page"`
			TotalPage   json.RawMessage `json:"total_page"`
			TotalItems  json.RawMessage `json:"total_items"`
		} `json:"pagination"`
	}
	if !isNull(metadata) {
		if err := json.Unmarshal(metadata, &meta); err != nil {
			return nil, req.fail(0, nil, fmt.Errorf("%w: metadata: %v", ErrUnexpectedShape, err), KindPermanent)
		}
	}
	if !isNull(data) && bytes.TrimSpace(data)[0] != '[' {
		return nil, req.fail(0, nil, fmt.Errorf("%w: data is not an array", ErrUnexpectedShape), KindPermanent)
	}
	page := &InboxPage{Messages: make([]Message, 0, 100)}
	eachElement(data, func(i int, item []byte) {
		m, err := decodeValidMessage(item, c.opts.Location)
		if err == nil && m.ConversationID == "" {
			err = &DecodeError{ID: m.ID, Raw: m.Raw, Err: errors.New("listed without a conversation_id")}
		}
		if err != nil {
			var de *DecodeError
			if errors.As(err, &de) {
				de.Index = i
				page.Bad = append(page.Bad, de)
			}
			return
		}
		page.Messages = append(page.Messages, m)
	})
	if p := meta.Pagination; p != nil {
		num := func(raw json.RawMessage) int {
			n, _ := strconv.Atoi(unquoteID(raw))
			return n
		}
		page.CurrentPage, page.TotalPages, page.TotalItems = num(p.CurrentPage), num(p.TotalPage), num(p.TotalItems)
	}
	return page, nil
}

// IsUnsupported reports whether the API answered as a deployment without
// the endpoint does (404, 405, or 400 for parameters it does not know).
func IsUnsupported(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.Status == http.StatusNotFound || e.Status == http.StatusMethodNotAllowed ||
		e.Status == http.StatusBadRequest)
}
