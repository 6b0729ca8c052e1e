"""``make demo``: a real scenario against the fake server, printed step by step.

Run it as ``python examples/demo.py``. It uses only the SDK's public names, as your code would.
"""

from __future__ import annotations

import asyncio
import csv
import tempfile
import time
from collections import Counter
from pathlib import Path

from dialnexa_async import AsyncDialNexa
from dialnexa_async.testing import FakeDialNexa

LEADS = 3000
LATENCY = 0.01


def _write_csv(path: Path, count: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone_number", "customer_name", "city"])
        for i in range(count):
            writer.writerow([f"+9198{i:08d}", f"Customer {i}", ("Mumbai", "Delhi", "Pune")[i % 3]])


async def main() -> None:
    async with FakeDialNexa(leads=LEADS, latency=LATENCY) as fake:
        print(f"fake DialNexa server on {fake.url} ({LATENCY * 1000:.0f} ms per request)")
        async with AsyncDialNexa(fake.api_key, base_url=fake.url) as dn:
            wf = await dn.workflows.create(title="Lead Nurture", description="demo", status="draft")
            print(f"created workflow {wf.id} {wf.title!r} ({wf.status})")

            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "leads.csv"
                _write_csv(path, LEADS)
                started = time.perf_counter()
                result = await dn.workflows.leads.enroll(wf.id, path, chunk_size=1000)
                took = time.perf_counter() - started
            print(
                f"enrolled {result.leads_enrolled} leads from {path.name} in "
                f"{len(result.uploads)} concurrent uploads ({took:.2f}s); "
                f"failed uploads: {len(result.failed)}"
            )

            wf = await dn.workflows.activate(wf.id)
            print(f"activated {wf.id}: {wf.status}")

            started = time.perf_counter()
            leads = dn.workflows.leads.list(wf.id)
            by_status = Counter([str(lead.status) async for lead in leads])
            took = time.perf_counter() - started
            print(
                f"scanned {sum(by_status.values())} leads of {wf.id} in "
                f"{leads.stats.pages_fetched} pages, {leads.concurrency} at a time ({took:.2f}s)"
            )
            for status, count in sorted(by_status.items()):
                print(f"  {status:<12} {count}")

            seeded = fake.workflow_id or ""
            tile = await dn.workflows.leads.status_counts(seeded)
            print(f"dashboard tile for {seeded}: " + ", ".join(f"{s} {n}" for s, n in tile.items()))

            first = (await dn.workflows.leads.page(wf.id, limit=1)).data[0]
            await dn.workflows.leads.remove(wf.id, first.id)
            print(f"removed lead {first.id} ({first.phone_number}) from {wf.id}")

            campaign_lead = await dn.campaign_leads.get(fake.campaign_lead_id or "")
            print(
                f"campaign lead {campaign_lead.id}: {campaign_lead.phone_number}, "
                f"{campaign_lead.status}, variables {dict(campaign_lead.metadata)}"
            )
        stats = fake.stats
        print(
            f"the server answered {stats.requests} requests, at most {stats.max_in_flight} at once"
        )


if __name__ == "__main__":
    asyncio.run(main())
