"""The one exception type services raise for a request they refuse.

The API turns it into `{"code": ..., "message": ...}` with `status`; tasks store
`code`/`message` on the job row.
"""


class ServiceError(Exception):
    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
