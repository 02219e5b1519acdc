"""An S3-compatible server on 127.0.0.1 for tests and benchmarks: moto in server mode.

moto runs in its own process (`python -m moto.server`) and is reached over real HTTP, through
boto3 and django-storages, like any S3; nothing leaves loopback. Each `S3Server` has its own
bucket. No Django here (devstack imports none either), so bench/ can use it as is:

    with S3Server(log_dir=tmp) as s3:
        env = {**os.environ, **s3.env()}      # STORAGE_BACKEND=s3 and the S3_* settings, for every process
        ...
        s3.keys("clips/")                      # names in the bucket (under S3_PREFIX), as the rows store them
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
import requests

from medicine_project.devstack import free_port

REGION = "us-east-1"
# moto accepts any credentials; these only have to be the same on every side.
ACCESS_KEY = "carepill-test"
SECRET_KEY = "carepill-test-secret"


class S3Server:
    """One moto server process and one bucket in it; `env()` is what the service's processes need."""

    def __init__(self, *, log_dir: Path, bucket: str | None = None, prefix: str = "carepill") -> None:
        self.log_dir = Path(log_dir)
        self.bucket = bucket or f"carepill-test-{uuid.uuid4().hex[:8]}"
        self.prefix = prefix
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 30.0) -> S3Server:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"moto-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                requests.get(self.endpoint_url + "/moto-api/", timeout=2).raise_for_status()
                break
            except requests.RequestException:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server did not start; see {log.name}") from None
                time.sleep(0.05)
        self.client().create_bucket(Bucket=self.bucket)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """The environment of a web, worker or beat process that keeps its media in this bucket."""
        return {
            "STORAGE_BACKEND": "s3",
            "S3_BUCKET": self.bucket,
            "S3_ENDPOINT_URL": self.endpoint_url,
            "S3_REGION": REGION,
            "S3_ACCESS_KEY_ID": ACCESS_KEY,
            "S3_SECRET_ACCESS_KEY": SECRET_KEY,
            "S3_PREFIX": self.prefix,
            "S3_ADDRESSING_STYLE": "path",
        }

    def client(self) -> Any:
        """A boto3 client of its own: checks that go around the service."""
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=REGION,
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)

    def key(self, name: str) -> str:
        """The object key of a storage name (what a FileField stores: `clips/<user>/<key>.wav`)."""
        return f"{self.prefix}/{name}" if self.prefix else name

    def keys(self, under: str = "") -> set[str]:
        """Storage names of the objects under `under` (relative to the prefix, like the rows' names)."""
        start = self.key(under)
        names = set()
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start):
            for entry in page.get("Contents", ()):
                names.add(entry["Key"][len(self.key("")):])
        return names

    def read(self, name: str) -> bytes:
        return self.client().get_object(Bucket=self.bucket, Key=self.key(name))["Body"].read()

    def multipart_uploads(self) -> list[dict[str, Any]]:
        """Multipart uploads begun and never finished (the only way S3 holds a partial object)."""
        return self.client().list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])

    def empty(self) -> None:
        client = self.client()
        for name in self.keys():
            client.delete_object(Bucket=self.bucket, Key=self.key(name))
