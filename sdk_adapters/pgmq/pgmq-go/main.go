// PGMQ through pgmq-go. PGMQ ships no worker loop, so this is a small one made of the SDK's
// own calls: Read with a visibility timeout, Archive on success, and on failure leave the
// message to reappear when its visibility timeout runs out.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"gauntlet/protocol"

	"github.com/craigpastro/pgmq-go"
	"github.com/jackc/pgx/v5"
)

var cfg = protocol.LoadConfig()

// Behind PgBouncer: pgx's CacheDescribe, not Exec. pgmq-go passes message bodies as
// json.RawMessage (pgmq.go:97-121), which Exec sends typed json, and pgmq.send takes jsonb
// (json -> jsonb is no implicit cast); CacheDescribe lets the server type the parameters.
func init() { protocol.PoolerQueryExecMode = pgx.QueryExecModeCacheDescribe }

// pgmq-go takes any DB (pool or transaction), so enqueue can join the caller's transaction;
// SendBatch too. A batch has one delay (SendBatchWithDelayTimestamp), so a group holds specs of
// one delay_ms only (delayKey).
var capabilities = []string{"fifo", "delay", "tx_enqueue", "batch_enqueue", "visibility_timeout", "crash_recovery", "worker"}

func info() error {
	return protocol.Info(capabilities)
}

func prepare() error {
	ctx := context.Background()
	db, err := protocol.Pool(ctx, cfg, 1)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := pgmq.CreateQueue(ctx, db, cfg.Queue); err != nil {
		return err
	}
	protocol.Emit(map[string]any{"ok": true})
	return nil
}

func send(ctx context.Context, db pgmq.DB, spec protocol.Spec) (int64, error) {
	if spec.DelayMS > 0 {
		return pgmq.SendWithDelayTimestamp(ctx, db, cfg.Queue, protocol.MakeBody(spec),
			time.Now().Add(time.Duration(spec.DelayMS)*time.Millisecond))
	}
	return pgmq.Send(ctx, db, cfg.Queue, protocol.MakeBody(spec))
}

// sendBatch sends a group of one delay (delayKey) in one call.
func sendBatch(ctx context.Context, db pgmq.DB, specs []protocol.Spec) ([]protocol.Result, error) {
	msgs := make([]json.RawMessage, len(specs))
	for i, spec := range specs {
		msgs[i] = protocol.MakeBody(spec)
	}
	var ids []int64
	var err error
	if delay := specs[0].DelayMS; delay > 0 {
		ids, err = pgmq.SendBatchWithDelayTimestamp(ctx, db, cfg.Queue, msgs, time.Now().Add(time.Duration(delay)*time.Millisecond))
	} else {
		ids, err = pgmq.SendBatch(ctx, db, cfg.Queue, msgs)
	}
	results := make([]protocol.Result, len(ids))
	for i, id := range ids {
		results[i] = protocol.Result{ID: strconv.FormatInt(id, 10)}
	}
	return results, err
}

func delayKey(spec protocol.Spec) string {
	return strconv.FormatInt(spec.DelayMS, 10)
}

func enqueue() error {
	ctx := context.Background()
	db, err := protocol.Pool(ctx, cfg, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	calls := func(conn pgmq.DB) (func(protocol.Spec) (string, error), *protocol.Batch) {
		return func(spec protocol.Spec) (string, error) {
				id, err := send(ctx, conn, spec)
				return strconv.FormatInt(id, 10), err
			}, &protocol.Batch{Key: delayKey, Send: func(specs []protocol.Spec) ([]protocol.Result, error) {
				return sendBatch(ctx, conn, specs)
			}}
	}
	if cfg.Transaction == nil {
		one, batch := calls(db)
		protocol.Acknowledge(cfg, one, batch)
		return nil
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	one, batch := calls(tx)
	protocol.EnqueueInTransaction(ctx, cfg, tx, one, batch)
	return nil
}

func work() error {
	stop, cancel := protocol.StopContext()
	defer cancel()
	size := cfg.PoolSize
	if size == 4 { // the default: one connection per slot plus one
		size = cfg.Concurrency + 1
	}
	// Job calls use a context that outlives SIGTERM, so jobs in flight can finish.
	ctx := context.Background()
	db, err := protocol.Pool(ctx, cfg, size)
	if err != nil {
		return err
	}
	defer db.Close()
	history := protocol.OpenHistory(cfg)
	vt := int64(cfg.VisibilityTimeoutS)
	protocol.RunSlots(stop, cfg, func() (bool, error) {
		msg, err := pgmq.Read(ctx, db, cfg.Queue, vt)
		if errors.Is(err, pgmq.ErrNoRows) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if protocol.Execute(history, msg.Message, int(msg.ReadCount), strconv.FormatInt(msg.MsgID, 10)) {
			if _, err := pgmq.Archive(ctx, db, cfg.Queue, msg.MsgID); err != nil {
				return true, err
			}
		}
		return true, nil
	})
	return nil
}

func main() {
	protocol.Main(map[string]func() error{"info": info, "prepare": prepare, "enqueue": enqueue, "work": work})
}
