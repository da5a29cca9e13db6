# The two set-up commands: `make run` and `make test`. Both bootstrap first.
.PHONY: bootstrap run test lint fmt

CARGO ?= cargo
export PATH := $(or $(CARGO_HOME),$(HOME)/.cargo)/bin:$(PATH)

bootstrap:
	@./scripts/bootstrap.sh test

run:
	@./scripts/bootstrap.sh run
	$(CARGO) run --locked --bin huddle

test:
	@./scripts/bootstrap.sh test
	$(CARGO) test --workspace --locked

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	@[ -d web/node_modules/typescript ] || npm ci --prefix web --no-audit --no-fund
	web/node_modules/.bin/tsc -p web --noEmit

fmt:
	$(CARGO) fmt --all
