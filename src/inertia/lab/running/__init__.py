"""Running: build an entry's optimizer, train runs (one at a time or in parallel processes).

* :mod:`.build` turns a parsed entry into an optimizer and a schedule;
* :mod:`.runner` trains one (workload, entry, seed) run into a :class:`~inertia.lab.records.RunRecord`;
* :mod:`.pool` trains many, in this process or in worker processes, handing each record
  back as it finishes so the caller can store it at once.

Nothing here decides what a result means: that is scoring's job, from stored records.
"""
