# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
export FLASK_APP := app:create_app

.PHONY: run test setup install assets translations db browser lint messages bench clean

# The production server in its embedded form: one gunicorn process with its gevent worker (deploy/gunicorn.conf.py).
run: setup
	HOST=$(HOST) PORT=$(PORT) $(BIN)/gunicorn -c deploy/gunicorn.conf.py

test: setup browser
	$(BIN)/python -m pytest

setup: install assets translations db

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

ASSET_SOURCES := $(wildcard static/src/*.js)

static/dist/.built: node_modules/.package-lock.json $(ASSET_SOURCES)
	node_modules/.bin/esbuild static/src/main.js static/src/editor.js static/src/comments.js --bundle --format=esm --minify --sourcemap --outdir=static/dist --log-level=warning
	touch $@

assets: static/dist/.built

translations: install
	$(BIN)/pybabel compile -d app/translations >/dev/null

db: install
	$(BIN)/flask db upgrade
	$(BIN)/flask drafts load drafts
	$(BIN)/flask demo seed

# Browser tests drive Debian's Chromium; install it when missing and we may (root), else they skip and say why.
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium for the browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
			|| echo "Could not install chromium: browser tests will skip (and fail under CI=true)"; \
	else echo "No /usr/bin/chromium and not root: browser tests will skip (and fail under CI=true)"; fi

lint: install
	$(BIN)/ruff check app tests bench
	$(BIN)/ruff format --check app tests bench

messages: install
	$(BIN)/pybabel extract -F babel.cfg -k _l -o app/translations/messages.pot .
	$(BIN)/pybabel update -i app/translations/messages.pot -d app/translations --no-fuzzy-matching

bench: setup
	$(BIN)/python bench/render.py

clean:
	rm -rf $(VENV) node_modules static/dist instance
