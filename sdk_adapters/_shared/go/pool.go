package protocol

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Pool is a pgx pool of at most size connections on the harness's DSN.
func Pool(ctx context.Context, cfg Config, size int) (*pgxpool.Pool, error) {
	config, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, err
	}
	config.MaxConns = int32(size)
	return pgxpool.NewWithConfig(ctx, config)
}
