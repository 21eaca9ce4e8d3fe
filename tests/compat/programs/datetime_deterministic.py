import calendar
import time
from datetime import date, datetime, timedelta, timezone

start = datetime(2024, 2, 28, 23, 30, tzinfo=timezone.utc)
print(start + timedelta(hours=1), (start + timedelta(days=1)).strftime("%A %d %B %Y"))
print(date(2024, 12, 25).isoweekday(), date(2000, 1, 1).toordinal())
print(calendar.isleap(2024), calendar.monthrange(2023, 2))
print(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(0)))
print(datetime.fromisoformat("2021-06-01T12:00:00+02:00").astimezone(timezone.utc))
print((date(2025, 1, 1) - date(2024, 1, 1)).days)
print(type(time.time()).__name__, time.monotonic() > 0)
