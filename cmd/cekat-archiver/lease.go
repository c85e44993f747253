package main

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/cekat-archiver/cekat-archiver/config"
	"github.com/cekat-archiver/cekat-archiver/syncer/lease"
)

// holdLease takes the archive's lease (the shard's, when sharded), or
// returns why not: another archiver, named, holds it. The lease is renewed
// until release is called, which lets it go; the returned context ends
// when the lease is lost, with lease.ErrLost as its cause.
func holdLease(ctx context.Context, cfg config.Config, store lease.Store, log *zap.Logger) (context.Context, func(), error) {
	l, err := lease.Acquire(ctx, store, lease.Options{Name: lease.Name(shardOf(cfg).ID())})
	if err != nil {
		return nil, nil, err
	}
	log.Debug("archive lease taken", zap.String("holder", l.Holder()))
	lctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := l.Keep(lctx, func(err error) {
			log.Warn("renewing the archive's lease failed; tried again at the next heartbeat", zap.Error(err))
		})
		if errors.Is(err, lease.ErrLost) {
			log.Error("stopping: another archiver took the archive's lease", zap.Error(err))
			cancel(err)
		}
	}()
	return lctx, func() {
		cancel(nil)
		<-done
	}, nil
}

// leaseLost is the cause of ctx's end when the lease was lost, else nil.
func leaseLost(ctx context.Context) error {
	if err := context.Cause(ctx); errors.Is(err, lease.ErrLost) {
		return err
	}
	return nil
}
