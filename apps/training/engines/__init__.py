"""Training engines: ``local`` (the trainer in the worker) and ``pai`` (PAI's training service over HTTP).

Both read the sample the same way (``sample.fetch_run_sample``) and both end with the trainer's artifact:
the local engine calls it in-process, a PAI job runs ``python -m apps.training.trainer``.
"""
