"""`carepill-voice sync | say TEXT | play PHRASE_ID | run | confirm`; exit status = client.Outcome."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from carepill_voice import confirm
from carepill_voice.client import Client, Outcome
from carepill_voice.config import Config, ConfigError, load_config
from carepill_voice.runner import AlreadyRunning, Runner, local_zone, utc_now

EXIT_STATUS = """exit status:
  0  done (server audio or an up-to-date cache); run: stopped by SIGTERM/SIGINT; confirm: confirmed one
  1  unexpected internal error (logged)
  2  bad arguments or configuration; run: another run holds the cache directory
  3  degraded: spoken from a cached clip or the fallback voice, or sync incomplete
  4  nothing could be spoken, or sync could not reach the server (the cache is kept)
  5  play: that phrase is not in the cached bundle
  6  confirm: no reminder is waiting for a confirmation (none heard within the window,
     or the one heard is confirmed already)"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carepill-voice", description=__doc__, epilog=EXIT_STATUS,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="INI file (default: $CAREPILL_CONFIG or ~/.config/carepill-voice/config.ini)")
    parser.add_argument("-v", "--verbose", action="store_true")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("sync", help="download today's reminder clips into the cache")
    say = commands.add_parser("say", help="speak a text in the family voice")
    say.add_argument("text")
    say.add_argument("--language", choices=["ko", "en"], default=None)
    play = commands.add_parser("play", help="play a cached reminder clip (offline)")
    play.add_argument("phrase_id", type=int)
    commands.add_parser("run", help="stay running: speak every reminder at its time, online or not (the service)")
    commands.add_parser(
        "confirm", help="confirm the reminder just heard: its repeats stop (works offline; exit 6: none waiting)",
        description="Confirm the reminder heard last (first play or repeat) that is not confirmed yet and whose "
                    "window (the bundle's dose_alert_minutes, default 30) is still open. Its repeats stop at once; "
                    "the confirmation is sent to the server now if it answers, else by `run` later.",
        epilog=EXIT_STATUS, formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def run(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # `run` is a service: every decision it makes goes to the journal, not only problems.
    logging.basicConfig(level=logging.INFO if args.verbose or args.command == "run" else logging.WARNING,
                        format="carepill-voice: %(levelname)s %(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"carepill-voice: configuration error: {exc}", file=sys.stderr)
        return Outcome.USAGE
    if args.command == "run":
        return _run_service(config)
    client = Client(config)
    if args.command == "confirm":
        return confirm.command(client, local_zone(config.timezone), utc_now())
    if args.command == "sync":
        report = client.sync()
        print(f"sync: {'unchanged' if report.unchanged else 'updated'}, downloaded {report.downloaded}, "
              f"present {report.present}, pending {report.pending}, failed {report.failed}, pruned {report.pruned}"
              if report.outcome != Outcome.FAILED else "sync: server unavailable, cache kept")
        return report.outcome
    if args.command == "say":
        return client.say(args.text, args.language)
    return client.play(args.phrase_id)


def _run_service(config: Config) -> int:
    runner = Runner(config)
    # The handlers only set a flag and wake the sleeper: a play in progress finishes.
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    signal.signal(signal.SIGINT, lambda *_: runner.stop())
    signal.signal(signal.SIGHUP, lambda *_: runner.request_sync())
    signal.signal(signal.SIGUSR1, lambda *_: runner.confirmation_made())  # from `carepill-voice confirm`
    try:
        return runner.run()
    except AlreadyRunning as exc:
        logging.getLogger("carepill_voice").error("%s", exc)
        return Outcome.USAGE


def main(argv: list[str] | None = None) -> int:
    try:
        code = int(run(argv))
    except SystemExit as exc:  # argparse: --help (0) or usage error (2)
        code = exc.code if isinstance(exc.code, int) else Outcome.USAGE
    except Exception:  # noqa: BLE001 - documented exit status instead of a traceback
        logging.getLogger("carepill_voice").exception("internal error")
        code = Outcome.ERROR
    sys.exit(code)


if __name__ == "__main__":
    main()
