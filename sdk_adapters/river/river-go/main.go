// The River driver: River's own client (riverpgxv5) inserts, works, retries and rescues.
// Job args are the protocol's body under the kind "gauntlet", so riverqueue (Python) can
// insert jobs this worker runs.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"gauntlet/protocol"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
)

var cfg = protocol.LoadConfig()

// batch_enqueue: InsertMany / InsertManyTx (client.go:1978, :2013), InsertOpts per job, each
// job's own JobInsertResult (a unique skip refuses that spec alone).
var capabilities = []string{"priority", "fifo", "retries", "dead_letter", "delay", "dedupe", "tx_enqueue",
	"batch_enqueue", "visibility_timeout", "crash_recovery", "listen_notify", "periodic", "worker", "upgrade"}

// gauntletArgs is the protocol's body; a dedupe key rides beside it, the only field River's
// unique-by-args looks at (tagged river:"unique").
type gauntletArgs struct {
	protocol.Body
	DedupeKey string `json:"dedupe_key,omitempty" river:"unique"`
}

func (gauntletArgs) Kind() string { return "gauntlet" }

type gauntletWorker struct {
	river.WorkerDefaults[gauntletArgs]
	history *protocol.History
}

func (w *gauntletWorker) Work(ctx context.Context, job *river.Job[gauntletArgs]) error {
	if !protocol.Execute(w.history, job.EncodedArgs, job.Attempt, strconv.FormatInt(job.ID, 10)) {
		return fmt.Errorf("attempt %d fails by script", job.Attempt)
	}
	return nil
}

// periodicArgs is the protocol's periodic job: River inserts one per tick (from the elected
// leader only), with the tick as its ScheduledAt (internal/maintenance/periodic_job_enqueuer.go:619-621).
type periodicArgs struct{}

func (periodicArgs) Kind() string { return "gauntlet_periodic" }

type periodicWorker struct {
	river.WorkerDefaults[periodicArgs]
	history *protocol.History
}

func (w *periodicWorker) Work(ctx context.Context, job *river.Job[periodicArgs]) error {
	protocol.ExecutePeriodic(w.history, job.ScheduledAt, job.Attempt, strconv.FormatInt(job.ID, 10))
	return nil
}

// periodicJobs is the config's periodic job on the grid of its period, as a PeriodicSchedule.
func periodicJobs() []*river.PeriodicJob {
	if cfg.Periodic.EveryS <= 0 {
		return nil
	}
	every := protocol.GridSchedule{Every: time.Duration(cfg.Periodic.EveryS) * time.Second}
	return []*river.PeriodicJob{river.NewPeriodicJob(every, func() (river.JobArgs, *river.InsertOpts) {
		return periodicArgs{}, &river.InsertOpts{Queue: cfg.Queue}
	}, nil)}
}

// linearRetry replaces River's attempt^4 backoff (16 s before a third attempt) with 1 s per attempt.
type linearRetry struct{}

func (linearRetry) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(time.Duration(job.Attempt) * time.Second)
}

func client(db *pgxpool.Pool, config *river.Config) (*river.Client[pgx.Tx], error) {
	config.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return river.NewClient(riverpgxv5.New(db), config)
}

func info() error {
	return protocol.Info(capabilities)
}

func prepare() error {
	protocol.Emit(map[string]any{"ok": true}) // River queues are made by the first job or worker
	return nil
}

func insertOpts(spec protocol.Spec) *river.InsertOpts {
	opts := &river.InsertOpts{Queue: cfg.Queue, Priority: 4 - max(0, min(3, spec.Priority))} // River: 1 runs first
	if spec.DelayMS > 0 {
		opts.ScheduledAt = time.Now().Add(time.Duration(spec.DelayMS) * time.Millisecond)
	}
	if spec.MaxAttempts != nil {
		opts.MaxAttempts = *spec.MaxAttempts
	}
	if spec.DedupeKey != nil {
		opts.UniqueOpts = river.UniqueOpts{ByArgs: true, ByQueue: true}
	}
	return opts
}

func enqueue() error {
	ctx := context.Background()
	db, err := protocol.Pool(ctx, cfg, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	rc, err := client(db, &river.Config{})
	if err != nil {
		return err
	}
	send := func(insert func(river.JobArgs, *river.InsertOpts) (*rivertype.JobInsertResult, error)) func(protocol.Spec) (string, error) {
		return func(spec protocol.Spec) (string, error) {
			res, err := insert(jobArgs(spec), insertOpts(spec))
			if err != nil {
				return "", err
			}
			r := resultOf(spec, res)
			return r.ID, r.Err
		}
	}
	sendMany := func(insertMany func([]river.InsertManyParams) ([]*rivertype.JobInsertResult, error)) *protocol.Batch {
		return &protocol.Batch{Send: func(specs []protocol.Spec) ([]protocol.Result, error) {
			params := make([]river.InsertManyParams, len(specs))
			for i, spec := range specs {
				params[i] = river.InsertManyParams{Args: jobArgs(spec), InsertOpts: insertOpts(spec)}
			}
			inserted, err := insertMany(params)
			if err != nil {
				return nil, err
			}
			if len(inserted) != len(specs) {
				return nil, fmt.Errorf("InsertMany answered for %d jobs, was given %d", len(inserted), len(specs))
			}
			results := make([]protocol.Result, len(specs))
			for i, spec := range specs {
				results[i] = resultOf(spec, inserted[i])
			}
			return results, nil
		}}
	}
	if cfg.Transaction == nil {
		protocol.Acknowledge(cfg,
			send(func(a river.JobArgs, o *river.InsertOpts) (*rivertype.JobInsertResult, error) {
				return rc.Insert(ctx, a, o)
			}),
			sendMany(func(p []river.InsertManyParams) ([]*rivertype.JobInsertResult, error) { return rc.InsertMany(ctx, p) }))
		return nil
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	protocol.EnqueueInTransaction(ctx, cfg, tx,
		send(func(a river.JobArgs, o *river.InsertOpts) (*rivertype.JobInsertResult, error) {
			return rc.InsertTx(ctx, tx, a, o)
		}),
		sendMany(func(p []river.InsertManyParams) ([]*rivertype.JobInsertResult, error) {
			return rc.InsertManyTx(ctx, tx, p)
		}))
	return nil
}

func jobArgs(spec protocol.Spec) gauntletArgs {
	args := gauntletArgs{Body: protocol.NewBody(spec)}
	if spec.DedupeKey != nil {
		args.DedupeKey = *spec.DedupeKey
	}
	return args
}

// resultOf is one spec's outcome from its insert result: a unique skip is a refusal.
func resultOf(spec protocol.Spec, res *rivertype.JobInsertResult) protocol.Result {
	if res.UniqueSkippedAsDuplicate {
		return protocol.Result{Err: fmt.Errorf("refused: job %d holds dedupe key %q", res.Job.ID, jobArgs(spec).DedupeKey)}
	}
	return protocol.Result{ID: strconv.FormatInt(res.Job.ID, 10)}
}

func work() error {
	stop, cancel := protocol.StopContext()
	defer cancel()
	ctx := context.Background()
	size := cfg.PoolSize
	if size == 4 { // the default: one connection per slot plus the listener and the leader's
		size = cfg.Concurrency + 2
	}
	db, err := protocol.Pool(ctx, cfg, size)
	if err != nil {
		return err
	}
	defer db.Close()
	workers := river.NewWorkers()
	history := protocol.OpenHistory(cfg)
	river.AddWorker(workers, &gauntletWorker{history: history})
	river.AddWorker(workers, &periodicWorker{history: history})
	vt := time.Duration(cfg.VisibilityTimeoutS * float64(time.Second))
	poll := time.Duration(cfg.PollIntervalMS) * time.Millisecond
	rc, err := client(db, &river.Config{
		ID:                cfg.Worker + "-" + strconv.Itoa(os.Getpid()),
		Queues:            map[string]river.QueueConfig{cfg.Queue: {MaxWorkers: max(1, cfg.Concurrency)}},
		Workers:           workers,
		FetchCooldown:     min(poll, 100*time.Millisecond),
		FetchPollInterval: poll,
		// River's rescuer never rescues a job without a timeout, and wants RescueStuckJobsAfter >= JobTimeout.
		JobTimeout:           vt,
		RescueStuckJobsAfter: vt,
		RetryPolicy:          linearRetry{},
		PeriodicJobs:         periodicJobs(),
		// Behind PgBouncer: no LISTEN, River's documented mode for transaction pooling (client.go:340-353).
		PollOnly: cfg.Pooler != "",
	})
	if err != nil {
		return err
	}
	if err := rc.Start(ctx); err != nil {
		return err
	}
	<-stop.Done()
	// Stop: no new jobs; the ones in flight finish (bounded by the harness's stop bound).
	return rc.Stop(ctx)
}

func main() {
	protocol.Main(map[string]func() error{"info": info, "prepare": prepare, "enqueue": enqueue, "work": work})
}
