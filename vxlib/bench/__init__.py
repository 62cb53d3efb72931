"""Benchmarks: ``python -m vxlib.bench NAME [args]`` runs ``vxlib.bench.NAME.main(argv)``.

Each module prints its figures with the settings they were measured under (threads, machine
load); nothing here asserts a speed.
"""
