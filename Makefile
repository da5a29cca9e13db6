# The two set-up commands: `make run` and `make test`. Both bootstrap first.
.PHONY: bootstrap run test lint fmt

CARGO ?= cargo
export PATH := $(or $(CARGO_HOME),$(HOME)/.cargo)/bin:$(PATH)

bootstrap:
	@./scripts/bootstrap.sh

run: bootstrap
	$(CARGO) run --locked --bin huddle

test: bootstrap
	$(CARGO) test --workspace --locked

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt --all
