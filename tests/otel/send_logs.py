"""Sends log records to Sightline with the OpenTelemetry Python SDK over
OTLP gRPC (through Python's logging module, as applications do), then
prints what was sent as JSON for the Rust test to compare.

Usage: send_logs.py HOST:PORT
"""
import json
import logging
import sys

from opentelemetry._logs import set_logger_provider
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

endpoint = sys.argv[1]
resource = Resource.create(
    {
        "service.name": "spam-scanner",
        "service.namespace": "mail",
        "k8s.pod.name": "pod-7",
        "host.name": "node-3",
    }
)
provider = LoggerProvider(resource=resource)
set_logger_provider(provider)
provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=endpoint, insecure=True)))
log = logging.getLogger("scanner")
log.setLevel(logging.INFO)
log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))

sent = []
for i in range(5):
    msg = f"scanned message m-{i} verdict={'spam' if i % 2 else 'ham'}"
    log.warning(msg, extra={"mail.id": f"m-{i}"})
    sent.append(msg)

ok = provider.force_flush(timeout_millis=30_000)
provider.shutdown()
if not ok:
    sys.exit("force_flush failed")
print(json.dumps(sent))
