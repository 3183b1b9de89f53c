// Package protocol is the SDK-neutral half of driver protocol v1 (sdk_adapters/PROTOCOL.md)
// for Go drivers: config, specs, acknowledgements, history lines, scripted behaviour, SIGTERM.
package protocol

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const Version = 1

type Config struct {
	DSN                string  `json:"dsn"`
	Queue              string  `json:"queue"`
	Worker             string  `json:"worker"`
	Concurrency        int     `json:"concurrency"`
	History            string  `json:"history"`
	VisibilityTimeoutS float64 `json:"visibility_timeout_s"`
	PollIntervalMS     int     `json:"poll_interval_ms"`
	PoolSize           int     `json:"pool_size"`
	Transaction        *string `json:"transaction"`
	BatchSize          int     `json:"batch_size"` // 0 or 1 (absent, null): one SDK call per spec
	Pooler             string  `json:"pooler"`     // "pgbouncer": reached through PgBouncer in transaction mode
	Periodic           struct {
		EveryS int `json:"every_s"` // 0: no periodic job; else its period, ticks on multiples of it
	} `json:"periodic"`
}

type Spec struct {
	ID             string          `json:"id"`
	Payload        json.RawMessage `json:"payload"`
	Priority       int             `json:"priority"`
	DelayMS        int64           `json:"delay_ms"`
	MaxAttempts    *int            `json:"max_attempts"`
	DedupeKey      *string         `json:"dedupe_key"`
	FailTimes      int             `json:"fail_times"`
	SleepMS        int             `json:"sleep_ms"`
	CrashOnAttempt *int            `json:"crash_on_attempt"`
	PadBytes       int             `json:"pad_bytes"`
	EchoPayload    bool            `json:"echo_payload"`
}

type Meta struct {
	ID             string `json:"id"`
	FailTimes      int    `json:"fail_times"`
	SleepMS        int    `json:"sleep_ms"`
	CrashOnAttempt *int   `json:"crash_on_attempt"`
	EchoPayload    bool   `json:"echo_payload"`
}

type Body struct {
	Gauntlet Meta            `json:"gauntlet"`
	Payload  json.RawMessage `json:"payload"`
	Pad      string          `json:"pad"`
}

var stdout = struct {
	sync.Mutex
	*os.File
}{File: os.Stdout}

func LoadConfig() Config {
	cfg := Config{Concurrency: 1, PollIntervalMS: 50, VisibilityTimeoutS: 30, PoolSize: 4}
	if err := json.Unmarshal([]byte(os.Getenv("GAUNTLET_CONFIG")), &cfg); err != nil {
		Fail(fmt.Sprintf("bad GAUNTLET_CONFIG: %v", err), 2)
	}
	return cfg
}

func Emit(v any) {
	line, _ := json.Marshal(v)
	stdout.Lock()
	defer stdout.Unlock()
	stdout.Write(append(line, '\n'))
}

func Fail(message string, code int) {
	Emit(map[string]any{"ok": false, "error": message})
	os.Exit(code)
}

// Info answers the `info` command.
func Info(capabilities []string) error {
	Emit(map[string]any{"protocol": Version, "capabilities": capabilities})
	return nil
}

// Specs calls fn for each job spec on stdin; a line that is no valid spec gets an error ack.
func Specs(fn func(Spec)) {
	scan(fn, refuse)
}

func refuse(reason string) {
	Emit(map[string]any{"id": nil, "ok": false, "error": "invalid job spec: " + reason})
}

// Result is what an SDK's batch call says about one spec: its SDK id, or why it refused it.
type Result struct {
	ID  string
	Err error
}

// Batch is an SDK's batch call: Send returns one Result per spec, in order (an error fails
// the whole group). Specs of one group share Key(spec) (nil: any specs may share a group).
type Batch struct {
	Key  func(Spec) string
	Send func([]Spec) ([]Result, error)
}

// Groups calls fn with groups of up to size consecutive valid specs, each the moment it is
// complete: full, followed by an invalid line (acknowledged next), by a spec of another
// key (what the SDK's batch call must share) or by one whose dedupe_key the group already
// holds (no batch call treats two of one key as two single calls would), or at EOF.
func Groups(size int, key func(Spec) string, fn func([]Spec)) {
	var group []Spec
	flush := func() {
		if len(group) > 0 {
			fn(group)
			group = nil
		}
	}
	scan(func(spec Spec) {
		if len(group) > 0 && ((key != nil && key(spec) != key(group[0])) || holdsKey(group, spec.DedupeKey)) {
			flush()
		}
		group = append(group, spec)
		if len(group) >= size {
			flush()
		}
	}, func(reason string) {
		flush()
		refuse(reason)
	})
	flush()
}

func holdsKey(group []Spec, key *string) bool {
	for _, s := range group {
		if key != nil && s.DedupeKey != nil && *s.DedupeKey == *key {
			return true
		}
	}
	return false
}

// AckBatch acknowledges each spec of a group from its batch call's answer, in order; a failed
// call, or one that answered for a different number of jobs, fails every spec of the group.
func AckBatch(group []Spec, results []Result, err error) {
	if err == nil && len(results) != len(group) {
		err = fmt.Errorf("the batch call answered for %d jobs, was given %d", len(results), len(group))
	}
	for i, spec := range group {
		if err != nil {
			Ack(spec.ID, "", err)
		} else {
			Ack(spec.ID, results[i].ID, results[i].Err)
		}
	}
}

// Acknowledge sends each spec through send as it arrives; with cfg.BatchSize > 1 and a batch
// call, groups of them through it (Groups, AckBatch).
func Acknowledge(cfg Config, send func(Spec) (string, error), batch *Batch) {
	if batch == nil || cfg.BatchSize <= 1 {
		Specs(func(spec Spec) {
			id, err := send(spec)
			Ack(spec.ID, id, err)
		})
		return
	}
	Groups(cfg.BatchSize, batch.Key, func(group []Spec) {
		results, err := batch.Send(group)
		AckBatch(group, results, err)
	})
}

func scan(fn func(Spec), invalid func(reason string)) {
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 64<<20)
	for scanner.Scan() {
		raw := strings.TrimSpace(scanner.Text())
		if raw == "" {
			continue
		}
		var spec Spec
		if err := json.Unmarshal([]byte(raw), &spec); err != nil || spec.ID == "" {
			reason := "not an object with a string id"
			if err != nil {
				reason = err.Error()
			}
			invalid(reason)
			continue
		}
		fn(spec)
	}
}

func Ack(id string, sdkID string, err error) {
	if err != nil {
		Emit(map[string]any{"id": id, "ok": false, "error": err.Error()})
		return
	}
	Emit(map[string]any{"id": id, "ok": true, "sdk_id": sdkID})
}

// Tx is the caller's transaction, as pgx.Tx (or any driver's) has it.
type Tx interface {
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// EnqueueInTransaction sends every spec inside tx (each, or in batches: Acknowledge),
// acknowledges each, then commits or rolls back as cfg.Transaction says and reports the outcome.
func EnqueueInTransaction(ctx context.Context, cfg Config, tx Tx, send func(Spec) (string, error), batch *Batch) {
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op once committed
	Acknowledge(cfg, send, batch)
	end, outcome := tx.Rollback, "rolled_back"
	if *cfg.Transaction == "commit" {
		end, outcome = tx.Commit, "committed"
	}
	if err := end(ctx); err != nil {
		Emit(map[string]any{"transaction": "failed", "error": err.Error()})
		return
	}
	Emit(map[string]any{"transaction": outcome})
}

// NewBody is the SDK job body every worker of the system understands.
func NewBody(spec Spec) Body {
	payload := spec.Payload
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	return Body{
		Gauntlet: Meta{spec.ID, spec.FailTimes, spec.SleepMS, spec.CrashOnAttempt, spec.EchoPayload},
		Payload:  payload,
		Pad:      strings.Repeat("x", spec.PadBytes),
	}
}

// MakeBody is NewBody, encoded.
func MakeBody(spec Spec) json.RawMessage {
	b, _ := json.Marshal(NewBody(spec))
	return b
}

// History appends one unbuffered line per event: a SIGKILL loses nothing already written.
type History struct {
	mu     sync.Mutex
	file   *os.File
	worker string
}

func OpenHistory(cfg Config) *History {
	if cfg.History == "" { // recording off (bench)
		return &History{worker: cfg.Worker}
	}
	f, err := os.OpenFile(cfg.History, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		Fail(fmt.Sprintf("history: %v", err), 1)
	}
	return &History{file: f, worker: cfg.Worker}
}

func (h *History) Write(event, id string, attempt int, extra map[string]any) {
	if h.file == nil {
		return
	}
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	line := map[string]any{
		"event": event, "id": id, "attempt": attempt, "worker": h.worker, "pid": os.Getpid(),
		"wall": float64(time.Now().UnixMicro()) / 1e6, "mono": float64(ts.Nano()/1000) / 1e6,
	}
	for k, v := range extra {
		line[k] = v
	}
	b, _ := json.Marshal(line)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.file.Write(append(b, '\n'))
}

// Execute runs a job's scripted behaviour; true when it succeeded. Exits when told to crash.
func Execute(h *History, body json.RawMessage, attempt int, sdkID string) bool {
	var job Body
	_ = json.Unmarshal(body, &job)
	id := job.Gauntlet.ID
	if id == "" {
		id = "foreign-" + sdkID
	}
	extra := map[string]any{"sdk_id": sdkID}
	if job.Gauntlet.EchoPayload {
		extra["payload"] = job.Payload
	}
	h.Write("start", id, attempt, extra)
	if job.Gauntlet.CrashOnAttempt != nil && *job.Gauntlet.CrashOnAttempt == attempt {
		os.Exit(137)
	}
	if job.Gauntlet.SleepMS > 0 {
		time.Sleep(time.Duration(job.Gauntlet.SleepMS) * time.Millisecond)
	}
	ok := attempt > job.Gauntlet.FailTimes
	outcome := "fail"
	if ok {
		outcome = "ok"
	}
	h.Write("end", id, attempt, map[string]any{"outcome": outcome})
	return ok
}

// StopContext is cancelled at SIGTERM.
func StopContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM)
}

// RunSlots runs cfg.Concurrency goroutines, each calling slot (one fetch-and-run; false when
// idle) until stop is cancelled; jobs in flight finish before it returns.
func RunSlots(stop context.Context, cfg Config, slot func() (bool, error)) {
	var wg sync.WaitGroup
	idle := time.Duration(cfg.PollIntervalMS) * time.Millisecond
	for i := 0; i < max(1, cfg.Concurrency); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for stop.Err() == nil {
				busy, err := slot()
				if err != nil {
					fmt.Fprintf(os.Stderr, "slot error: %v\n", err)
				}
				if !busy {
					select {
					case <-stop.Done():
					case <-time.After(idle):
					}
				}
			}
		}()
	}
	wg.Wait()
}

// Main dispatches the command named by the first argument.
func Main(commands map[string]func() error) {
	if len(os.Args) != 2 || commands[os.Args[1]] == nil {
		Fail("usage: driver {info|prepare|enqueue|work}", 2)
	}
	if err := commands[os.Args[1]](); err != nil {
		fmt.Fprintln(os.Stderr, err)
		Fail(err.Error(), 1)
	}
}

// GridSchedule's ticks are the Unix times that are multiples of Every: the protocol's periodic
// job, as a schedule whose Next(t) an SDK can call (River's PeriodicSchedule is this method).
type GridSchedule struct{ Every time.Duration }

func (g GridSchedule) Next(t time.Time) time.Time {
	return t.Truncate(g.Every).Add(g.Every)
}

// ExecutePeriodic runs one execution of the periodic job, named after its tick.
func ExecutePeriodic(h *History, tick time.Time, attempt int, sdkID string) bool {
	body, _ := json.Marshal(map[string]any{"gauntlet": map[string]any{"id": fmt.Sprintf("periodic-%d", tick.Unix())}})
	return Execute(h, body, attempt, sdkID)
}
