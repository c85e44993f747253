package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cekat-archiver/cekat-archiver/config"
	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
)

type versionCmd struct{}

func (versionCmd) Run(e *env) error {
	fmt.Fprintln(e.stdout, versionLine())
	return nil
}

// version is the module version, or the VCS revision of a development build.
func version() string {
	if ldVersion != "" {
		return ldVersion
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "dev-" + s.Value[:12]
		}
	}
	return "dev"
}

type configCheckCmd struct{}

func (configCheckCmd) Run(e *env) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	out, err := cfg.Masked()
	if err != nil {
		return err
	}
	// A misspelt variable is ignored by Load: say so, or it passes silently.
	if unknown := config.UnknownEnv(os.Environ()); len(unknown) > 0 {
		return exitCodeError{code: 1, msg: fmt.Sprintf("environment variables with the prefix %s that name no key (misspelt?): %s",
			config.EnvPrefix, strings.Join(unknown, ", "))}
	}
	fmt.Fprintf(e.stdout, "# configuration is valid; secrets masked\n%s", out)
	return nil
}

type migrateCmd struct {
	NewIdentity bool `help:"Give the archive a new identity (after restoring it from a backup, with no archiver running): spool files written before are then replayed without their sync states." name:"new-identity"`
}

func (m migrateCmd) Run(ctx context.Context, e *env) error {
	_, _, store, err := e.openArchive(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	applied, err := store.Migrate(ctx)
	if err != nil {
		return err
	}
	if m.NewIdentity {
		if _, err := store.NewArchiveID(ctx); err != nil {
			return err
		}
	}
	id, err := store.ArchiveID(ctx)
	if err != nil {
		return err
	}
	ver, _ := store.ServerVersion(ctx)
	fmt.Fprintf(e.stdout, "ClickHouse %s, database %s, archive %s: ", ver, store.Database(), id)
	if len(applied) == 0 {
		fmt.Fprintln(e.stdout, "schema up to date")
	} else {
		fmt.Fprintf(e.stdout, "applied %s\n", strings.Join(applied, ", "))
	}
	tables, err := store.Schema(ctx)
	if err != nil {
		return err
	}
	for _, t := range tables {
		fmt.Fprintf(e.stdout, "\n%s (%s)\n", t.Name, t.Engine)
		w := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
		for _, c := range t.Columns {
			fmt.Fprintf(w, "  %s\t%s\t%s\n", c.Name, c.Type, c.Default)
		}
		w.Flush()
	}
	return nil
}

type sendCmd struct {
	To           string        `help:"Recipient phone number, E.164." required:""`
	Text         string        `help:"Message text (or caption of a media message)."`
	Inbox        string        `help:"Source inbox id (documented body)."`
	Conversation string        `help:"Conversation id (real body)."`
	Type         string        `help:"text, image, video, document or audio." default:"text"`
	MediaURL     string        `help:"URL of the media file." name:"media-url"`
	Filename     string        `help:"File name of a document."`
	ReplyTo      string        `help:"Id of the message replied to." name:"reply-to"`
	Body         string        `help:"Request body style: documented or real." enum:"documented,real" default:"documented"`
	Timeout      time.Duration `help:"Time limit." default:"30s"`
}

func (s sendCmd) Run(ctx context.Context, e *env) error {
	// A send spends the same API budget as the runs: the same limiter,
	// whose day starts from what today's runs recorded in the archive.
	cfg, log, store, err := e.openArchive(ctx)
	if err != nil {
		return err
	}
	defer log.Sync()
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		return err
	}
	archive, err := sink.OpenArchive(ctx, store, sink.ArchiveOptions{}) // writes nothing: a private spool
	if err != nil {
		return err
	}
	defer archive.Close(context.WithoutCancel(ctx)) // nothing is written: it only stops its timer
	limiter, err := newLimiter(ctx, cfg, archive, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	client, err := newClient(cfg.API, limiter, nil, cekat.SendBody(s.Body), zap.NewNop())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	req := cekat.SendRequest{InboxID: s.Inbox, ConversationID: s.Conversation, To: s.To, Type: s.Type, Text: s.Text,
		MediaURL: s.MediaURL, Filename: s.Filename, ReplyTo: s.ReplyTo}
	if s.Type != "text" {
		req.Caption, req.Text = s.Text, ""
	}
	res, err := client.SendMessage(ctx, req)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "sent %s to %s: %s at %s\n", display(res.MessageID, maxIDRunes), display(res.To, maxIDRunes),
		display(res.Status, maxIDRunes), res.Timestamp.Format(time.RFC3339))
	return nil
}
