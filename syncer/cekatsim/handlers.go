package cekatsim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /messages", s.api(EndpointList, s.apiAuthorized, s.handleList))
	// {id...}: an id sent with a raw '/' still reaches the detail handler,
	// which answers 404 in the API's envelope, as a strict server does.
	mux.Handle("GET /messages/{id...}", s.api(EndpointDetail, s.apiAuthorized, s.handleDetail))
	mux.Handle("POST /messages/whatsapp", s.api(EndpointSend, s.apiAuthorized, s.handleSend))
	s.discoveryRoutes(mux) // GET /api/conversations and its /_sim/ helpers (conversations.go)
	mux.HandleFunc("GET /_sim/truth", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		_ = s.WriteTruth(w)
	})
	mux.HandleFunc("GET /_sim/counts", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Counts())
	})
	mux.HandleFunc("POST /_sim/reset-counts", func(w http.ResponseWriter, r *http.Request) {
		s.ResetCounts()
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
	mux.HandleFunc("POST /_sim/advance", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil || d < 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "d must be a non-negative duration such as 90m"})
			return
		}
		s.Advance(d)
		writeJSON(w, http.StatusOK, map[string]string{"now": s.Now().Format(time.RFC3339Nano)})
	})
	mux.HandleFunc("POST /_sim/add", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		n := 1
		if q.Has("n") {
			var err error
			if n, err = strconv.Atoi(q.Get("n")); err != nil || n < 1 || n > 100000 {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "n must be within 1..100000"})
				return
			}
		}
		ids := s.addMessages(q.Get("conversation_id"), n)
		if ids == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown conversation"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"added": len(ids), "message_ids": ids})
	})
	s.deletionRoutes(mux) // GET /_sim/deletions, POST /_sim/delete-faults (deletions.go)
	return mux
}

func (s *Server) backofficeRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /v1/backoffice/conversations-delete", s.api(EndpointDelete, s.backofficeAuthorized, s.handleDelete))
	return mux
}

func validation(field, message string) []fieldError {
	return []fieldError{{Field: field, Message: message}}
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	convID := q.Get("conversation_id")
	if convID == "" {
		s.writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "conversation_id is required", validation("conversation_id", "is required"))
		return
	}
	limit := DefaultListLimit
	if !s.opts.NoPagination && q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 {
			s.writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "limit must be a positive integer", validation("limit", "must be a positive integer"))
			return
		}
		limit = min(n, MaxListLimit)
	}
	c, ok := s.lookupConv(convID)
	if !ok {
		s.writeError(w, http.StatusNotFound, "NOT_FOUND", "conversation not found", nil)
		return
	}
	if s.opts.LiveRate > 0 && s.draw() < s.opts.LiveRate {
		s.addMessages(convID, 1+s.drawN(3))
	}
	v, ok := s.snapshot(c)
	if !ok {
		s.writeError(w, http.StatusNotFound, "NOT_FOUND", "conversation not found", nil)
		return
	}
	start, end := 0, v.n
	cursor := false
	if !s.opts.NoPagination {
		if before := q.Get("before"); before != "" {
			cursor = true
			ci, pos, ok := s.decodeMessageID(before)
			if !ok || ci != c.idx || pos >= v.n {
				s.writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "before is not a message of this conversation", validation("before", "unknown message id"))
				return
			}
			end = pos
		}
		start = max(0, end-limit)
	}
	hasMore := start > 0
	var before *string
	if start < end {
		id := s.messageID(c.idx, start)
		before = &id
	}
	if !s.opts.NoPagination {
		if st, more, cur, ok := s.cycle(c, start, end, cursor); ok {
			start, hasMore, before = st, more, &cur
		}
	}
	stranger, strangerAt := s.foreign(c, start, end)

	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	var buf bytes.Buffer
	buf.WriteString(`{"success":true,"data":[`)
	items := 0
	add := func(m *msg) error {
		if items > 0 {
			buf.WriteByte(',')
		}
		items++
		return s.appendItem(&buf, m, false)
	}
	err := s.each(v, start, end, func(m *msg) error {
		if stranger != nil && m.pos-start == strangerAt {
			if err := add(stranger); err != nil {
				return err
			}
		}
		if err := add(m); err != nil {
			return err
		}
		if buf.Len() >= 64<<10 {
			if _, err := w.Write(buf.Bytes()); err != nil {
				return err
			}
			buf.Reset()
		}
		return nil
	})
	if err == nil && stranger != nil && strangerAt == end-start {
		err = add(stranger)
	}
	if err != nil {
		return
	}
	buf.WriteByte(']')
	if !s.opts.NoPagination {
		p := struct {
			HasMore bool    `json:"has_more"`
			Before  *string `json:"before"`
		}{hasMore, before}
		b, _ := json.Marshal(p)
		buf.WriteString(`,"pagination":`)
		buf.Write(b)
	}
	buf.WriteString("}\n")
	_, _ = w.Write(buf.Bytes())
}

// detailID is the id of GET /messages/{id}: the one segment after
// /messages/ of the path as sent, decoded exactly once. An id holding '/'
// arrives as %2F; a '/' sent raw, or an id escaped twice, names no message.
func detailID(r *http.Request) (string, bool) {
	seg, ok := strings.CutPrefix(r.URL.EscapedPath(), "/messages/")
	if !ok || seg == "" || strings.Contains(seg, "/") {
		return "", false
	}
	id, err := url.PathUnescape(seg)
	return id, err == nil
}

func (s *Server) handleDetail(w http.ResponseWriter, r *http.Request) {
	id, ok := detailID(r)
	var v view
	var pos int
	if ok {
		v, pos, ok = s.lookupMessage(id)
	}
	if !ok {
		s.writeError(w, http.StatusNotFound, "NOT_FOUND", "message not found", nil)
		return
	}
	var buf bytes.Buffer
	buf.WriteString(`{"success":true,"data":`)
	if err := s.appendItem(&buf, s.messageAt(v, pos), true); err != nil {
		s.writeError(w, http.StatusInternalServerError, "INTERNAL_ERROR", err.Error(), nil)
		return
	}
	buf.WriteString("}\n")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, _ = w.Write(buf.Bytes())
}

var (
	e164Re     = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	receiverRe = regexp.MustCompile(`^\+?[1-9][0-9]{6,14}$`)
	sendTypes  = map[string]bool{"text": true, "image": true, "video": true, "document": true, "audio": true}
)

// fields decodes a JSON object keeping raw values.
type fields map[string]json.RawMessage

// str reads an optional string field, recording a type error.
func (f fields) str(name string, errs *[]fieldError) (string, bool) {
	raw, ok := f[name]
	if !ok || string(raw) == "null" {
		return "", false
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		*errs = append(*errs, fieldError{name, "must be a string"})
		return "", false
	}
	return v, true
}

func (f fields) has(names ...string) bool {
	for _, n := range names {
		if _, ok := f[n]; ok {
			return true
		}
	}
	return false
}

func validURL(u string) bool {
	p, err := url.Parse(u)
	return err == nil && (p.Scheme == "http" || p.Scheme == "https") && p.Host != ""
}

func (s *Server) handleSend(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var f fields
	if err == nil {
		err = json.Unmarshal(body, &f)
	}
	if err != nil || f == nil {
		s.writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "request body must be a JSON object", validation("body", "must be a JSON object"))
		return
	}
	var errs []fieldError
	missing := func(name string) { errs = append(errs, fieldError{name, "is required"}) }
	sm := &sentMsg{}
	var (
		c        *convo
		to       string
		inboxID  string
		realBody = !f.has("inbox_id", "to", "type", "content") && f.has("conversation_id", "receiver", "message", "media_type", "file_url")
	)
	if realBody {
		convID, _ := f.str("conversation_id", &errs)
		to, _ = f.str("receiver", &errs)
		message, _ := f.str("message", &errs)
		mediaType, _ := f.str("media_type", &errs)
		fileURL, _ := f.str("file_url", &errs)
		if convID == "" {
			missing("conversation_id")
		}
		if to == "" {
			missing("receiver")
		} else if !receiverRe.MatchString(to) {
			errs = append(errs, fieldError{"receiver", "must be a phone number"})
		}
		if mediaType == "" {
			mediaType = "text"
		}
		sm.typ = mediaType
		switch {
		case !sendTypes[mediaType]:
			errs = append(errs, fieldError{"media_type", "must be one of text, image, video, document, audio"})
		case mediaType == "text":
			if strings.TrimSpace(message) == "" {
				missing("message")
			}
			sm.text = message
		default:
			if fileURL == "" {
				missing("file_url")
			} else if !validURL(fileURL) {
				errs = append(errs, fieldError{"file_url", "must be an http(s) URL"})
			}
			sm.url, sm.caption = fileURL, message
		}
		if len(errs) == 0 {
			var ok bool
			if c, ok = s.lookupConv(convID); !ok {
				s.writeError(w, http.StatusNotFound, "NOT_FOUND", "conversation not found", nil)
				return
			}
		}
	} else {
		inboxID, _ = f.str("inbox_id", &errs)
		to, _ = f.str("to", &errs)
		typ, _ := f.str("type", &errs)
		replyTo, _ := f.str("reply_to", &errs)
		if replyTo == "" {
			replyTo, _ = f.str("reply-to", &errs)
		}
		if inboxID == "" {
			missing("inbox_id")
		}
		if to == "" {
			missing("to")
		} else if !e164Re.MatchString(to) {
			errs = append(errs, fieldError{"to", "must be a phone number in E.164 format"})
		}
		if typ == "" {
			missing("type")
		} else if !sendTypes[typ] {
			errs = append(errs, fieldError{"type", "must be one of text, image, video, document, audio"})
		}
		var content fields
		if raw, ok := f["content"]; !ok || string(raw) == "null" {
			missing("content")
		} else if json.Unmarshal(raw, &content) != nil || content == nil {
			errs = append(errs, fieldError{"content", "must be an object"})
		}
		if content != nil && sendTypes[typ] {
			sm.typ = typ
			if typ == "text" {
				sm.text, _ = content.str("text", &errs)
				if strings.TrimSpace(sm.text) == "" {
					missing("content.text")
				}
			} else {
				sm.url, _ = content.str("url", &errs)
				if sm.url == "" {
					missing("content.url")
				} else if !validURL(sm.url) {
					errs = append(errs, fieldError{"content.url", "must be an http(s) URL"})
				}
				if typ != "audio" {
					sm.caption, _ = content.str("caption", &errs)
				}
				if typ == "document" {
					sm.filename, _ = content.str("filename", &errs)
				}
			}
		}
		sm.replyTo = replyTo
	}
	if len(errs) > 0 {
		s.writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "validation failed", errs)
		return
	}

	s.mu.Lock()
	if c == nil {
		c = s.byPhone[to]
	}
	if sm.replyTo != "" {
		ci, pos, ok := s.decodeMessageID(sm.replyTo)
		if !ok || c == nil || ci != c.idx || pos >= c.gen+len(c.extras) {
			s.mu.Unlock()
			s.writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "validation failed", validation("reply_to", "unknown message in this conversation"))
			return
		}
	}
	if c == nil || c.deleted {
		if c != nil { // a real-body send raced with a delete
			s.mu.Unlock()
			s.writeError(w, http.StatusNotFound, "NOT_FOUND", "conversation not found", nil)
			return
		}
		c = s.newConvo(len(s.convs), 0, to, s.inboxFor(inboxID))
		s.register(c)
	}
	id := s.appendLocked(c, sm)
	ts := time.Unix(c.lastSec, 0).UTC()
	s.mu.Unlock()

	writeOK(w, struct {
		MessageID string `json:"message_id"`
		Status    string `json:"status"`
		To        string `json:"to"`
		Timestamp string `json:"timestamp"`
	}{id, "sent", to, ts.Format(time.RFC3339)})
}

// inboxFor finds an inbox by either id, or makes one for an unknown id.
func (s *Server) inboxFor(id string) *inbox {
	for _, ib := range s.inboxes {
		if ib.docID == id || ib.realID == id {
			return ib
		}
	}
	return &inbox{docID: id, realID: id}
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var f fields
	if err == nil {
		err = json.Unmarshal(body, &f)
	}
	if err != nil || f == nil {
		s.writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "request body must be a JSON object", validation("body", "must be a JSON object"))
		return
	}
	var ids []string
	raw, ok := f["conversation_ids"]
	switch {
	case !ok || string(raw) == "null":
		s.writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "conversation_ids is required", validation("conversation_ids", "is required"))
		return
	case json.Unmarshal(raw, &ids) != nil:
		s.writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "conversation_ids must be an array of strings", validation("conversation_ids", "must be an array of strings"))
		return
	case len(ids) == 0:
		s.writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "conversation_ids must not be empty", validation("conversation_ids", "must not be empty"))
		return
	case len(ids) > s.opts.MaxDeleteBatch:
		s.writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "too many conversation_ids",
			validation("conversation_ids", "at most "+strconv.Itoa(s.opts.MaxDeleteBatch)+" ids per request"))
		return
	}
	deleted, ok := s.handleDeleteIDs(w, ids) // logged; may answer a queued fault instead (deletions.go)
	if !ok {
		return
	}
	writeOK(w, struct {
		Deleted         int      `json:"deleted"`
		ConversationIDs []string `json:"conversation_ids"`
	}{len(deleted), deleted})
}

func writeOK(w http.ResponseWriter, data any) {
	writeJSON(w, http.StatusOK, struct {
		Success bool `json:"success"`
		Data    any  `json:"data"`
	}{true, data})
}
