// PGMQ through pgmq-go. PGMQ ships no worker loop, so this is a small one made of the SDK's
// own calls: Read with a visibility timeout, Archive on success, and on failure leave the
// message to reappear when its visibility timeout runs out.
package main

import (
	"context"
	"errors"
	"strconv"
	"time"

	"gauntlet/protocol"

	"github.com/craigpastro/pgmq-go"
)

var cfg = protocol.LoadConfig()

// pgmq-go takes any DB (pool or transaction), so enqueue can join the caller's transaction.
var capabilities = []string{"fifo", "delay", "tx_enqueue", "visibility_timeout", "crash_recovery", "worker"}

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

func enqueue() error {
	ctx := context.Background()
	db, err := protocol.Pool(ctx, cfg, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	if cfg.Transaction == nil {
		protocol.Specs(func(spec protocol.Spec) {
			id, err := send(ctx, db, spec)
			protocol.Ack(spec.ID, strconv.FormatInt(id, 10), err)
		})
		return nil
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	protocol.EnqueueInTransaction(ctx, cfg, tx, func(spec protocol.Spec) (string, error) {
		id, err := send(ctx, tx, spec)
		return strconv.FormatInt(id, 10), err
	})
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
