"""The result store of a sweep: one Zarr group that xarray opens as a Dataset.

Layout (``xarray.open_zarr(path, mask_and_scale=False)`` or :func:`open_store`)::

    dimensions   one per axis, named after its dotted key ("cart.cells_per_kg", ...), then
                 "patient" (virtual patient index) and "patient_chunk" (for chunk_done)
    coordinates  each axis's values (float64, or strings for names and "dialysis"); patient
    variables    one per metric, float64 (axes..., patient), attrs units and long_name;
                 NaN where the metric is not reached (e.g. no B-cell recovery by the horizon)
                 or the patient failed (see status)
                 status (axes..., patient) int16: 0 solved, < 0 failed (cartkin.ode.Status,
                 -100 engine error), -32768 not computed yet
                 chunk_done (axes..., patient_chunk) uint8: 1 once a chunk is written
                 with [sweep] trajectories = m: traj_<observable> (axes..., traj_patient,
                 t_days) float64 and traj_status (axes..., traj_patient) for patients 0..m-1
    attributes   scenario_text, scenario_hash (SHA-256), scenario_file, seed, n_patients,
                 chunk_size, metrics, variability, model, cartkin_version, ...

Chunks are (1, ..., 1, chunk_size): one grid point and a run of patients, the unit of work.
A chunk's arrays are written concurrently (one round trip to zarr's event loop): 9 ms per chunk
of 10,000 patients x 8 metrics here instead of about 90 ms one array at a time.
A chunk's data are written before its ``chunk_done`` flag and each Zarr chunk file is replaced
atomically, so a sweep killed at any moment leaves a store whose flagged chunks are complete;
rerunning the same command computes only the unflagged ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cartkin.errors import ScenarioError
from cartkin.sweep.spec import METRIC_UNITS, Sweep

__all__ = ["NOT_RUN", "SweepStore", "open_store"]

NOT_RUN = -32768
STORE_VERSION = 1


class SweepStore:
    """A sweep's Zarr store, opened for writing chunks.

    Use :meth:`create_or_resume`; :meth:`write` stores one chunk.
    """

    def __init__(self, path: Path, group, sweep: Sweep, chunk_size: int):
        self.path = path
        self.group = group
        self.sweep = sweep
        self.chunk_size = chunk_size
        self.n_chunks = -(-sweep.n_patients // chunk_size)
        self._arrays = {name: group[name] for name in (*sweep.metrics, "status", "chunk_done")}

    # -- opening ----------------------------------------------------------------------------------
    @classmethod
    def create_or_resume(cls, path, sweep: Sweep, chunk_size: int) -> SweepStore:
        """Open ``path`` for ``sweep``: create it, or resume it if it holds the same scenario.

        Parameters
        ----------
        path : str or Path
            The ``.zarr`` directory.
        sweep : Sweep
        chunk_size : int
            Patients per chunk for a new store (a resumed store keeps its own).

        Raises
        ------
        ScenarioError
            When ``path`` holds a store of another scenario text, or is not a sweep store.
        """
        import zarr

        path = Path(path)
        if path.exists():
            try:
                group = zarr.open_group(str(path), mode="r+")
                attrs = dict(group.attrs)
            except Exception as exc:  # zarr raises several types for a non-store
                raise ScenarioError(
                    f"--out {path}: exists and is not a cartkin sweep store ({exc}); choose "
                    "another path or delete it"
                ) from None
            if attrs.get("cartkin_sweep_store") != STORE_VERSION:
                raise ScenarioError(
                    f"--out {path}: exists and is not a cartkin sweep store; choose another path"
                )
            if attrs.get("scenario_hash") != sweep.scenario_hash:
                raise ScenarioError(
                    f"--out {path}: the store holds a sweep of another scenario (file "
                    f"{attrs.get('scenario_file')!r}, sha256 {attrs.get('scenario_hash', '?')[:12]}"
                    f"...) but {sweep.source} has sha256 {sweep.scenario_hash[:12]}...; results "
                    "are never mixed: write to a new --out or delete the old store"
                )
            _check_same_solver(path, attrs, sweep)
            return cls(path, group, sweep, int(attrs["chunk_size"]))
        return cls._create(path, sweep, chunk_size)

    @classmethod
    def _create(cls, path: Path, sweep: Sweep, chunk_size: int) -> SweepStore:
        import zarr

        from cartkin import __version__

        chunk_size = int(min(chunk_size, sweep.n_patients))
        n_chunks = -(-sweep.n_patients // chunk_size)
        group = zarr.open_group(str(path), mode="w-")
        group.attrs.update(
            {
                "cartkin_sweep_store": STORE_VERSION,
                "title": sweep.base.name,
                "scenario_file": sweep.source,
                "scenario_text": sweep.text,
                "scenario_hash": sweep.scenario_hash,
                "model": sweep.model.name,
                "seed": str(sweep.seed),
                "n_patients": sweep.n_patients,
                "chunk_size": chunk_size,
                "metrics": list(sweep.metrics),
                "variability_omega2": json.dumps(sweep.variability),
                "flu_auc_window_mg_h_per_l": list(sweep.flu_auc_window_mg_h_per_l),
                "recovery_by_day": sweep.recovery_by_day,
                "axes": [a.key for a in sweep.axes],
                "trajectories": sweep.trajectories,
                "log_axes": [a.key for a in sweep.axes if a.log],
                "cartkin_version": __version__,
                "solver": sweep.solver.to_json(),
            }
        )
        dims = [a.key for a in sweep.axes]
        shape = sweep.shape
        for axis in sweep.axes:
            coord = axis.coordinate()
            arr = group.create_array(
                axis.key,
                shape=coord.shape,
                dtype=coord.dtype if axis.numeric else str,
                dimension_names=[axis.key],
            )
            arr[...] = coord
        patient = group.create_array(
            "patient", shape=(sweep.n_patients,), dtype="int64", dimension_names=["patient"]
        )
        patient[...] = np.arange(sweep.n_patients)
        patient.attrs["long_name"] = "virtual patient index"
        chunks = (*(1 for _ in shape), chunk_size)
        for name in sweep.metrics:
            arr = group.create_array(
                name, shape=(*shape, sweep.n_patients), dtype="float64", chunks=chunks,
                fill_value=np.nan, dimension_names=[*dims, "patient"],
            )  # fmt: skip
            arr.attrs.update({"units": METRIC_UNITS[name], "long_name": name})
        status = group.create_array(
            "status", shape=(*shape, sweep.n_patients), dtype="int16", chunks=chunks,
            fill_value=NOT_RUN, dimension_names=[*dims, "patient"],
        )  # fmt: skip
        status.attrs.update(
            {
                "long_name": "solver status",
                "flag_values": [0, -1, -2, -3, -4, -5, -100, NOT_RUN],
                "flag_meanings": "success max_steps step_underflow non_finite stiff singular "
                "engine_error not_computed",
            }
        )
        done = group.create_array(
            "chunk_done", shape=(*shape, n_chunks), dtype="uint8",
            chunks=(*(1 for _ in shape), n_chunks), fill_value=0,
            dimension_names=[*dims, "patient_chunk"],
        )  # fmt: skip
        done.attrs["long_name"] = f"1 when the chunk of {chunk_size} patients is written"
        if sweep.trajectories:
            cls._create_trajectories(group, sweep, dims)
        return cls(path, group, sweep, chunk_size)

    @staticmethod
    def _create_trajectories(group, sweep: Sweep, dims) -> None:
        t = sweep.trajectory_t_days
        m = sweep.trajectories
        coord = group.create_array("t_days", shape=t.shape, dtype="float64",
                                   dimension_names=["t_days"])  # fmt: skip
        coord[...] = t
        coord.attrs.update({"units": "day", "long_name": "days after CAR-T infusion"})
        idx = group.create_array("traj_patient", shape=(m,), dtype="int64",
                                 dimension_names=["traj_patient"])  # fmt: skip
        idx[...] = np.arange(m)
        shape = sweep.shape
        for obs in sweep.model.observables:
            arr = group.create_array(
                f"traj_{obs.name}", shape=(*shape, m, t.size), dtype="float64",
                chunks=(*(1 for _ in shape), m, t.size), fill_value=np.nan,
                dimension_names=[*dims, "traj_patient", "t_days"],
            )  # fmt: skip
            arr.attrs.update({"units": obs.unit, "long_name": obs.description})
        status = group.create_array(
            "traj_status", shape=(*shape, m), dtype="int16", chunks=(*(1 for _ in shape), m),
            fill_value=NOT_RUN, dimension_names=[*dims, "traj_patient"],
        )  # fmt: skip
        status.attrs["long_name"] = "solver status of the stored trajectories"

    # -- chunks -----------------------------------------------------------------------------------
    def chunk_range(self, j: int) -> tuple[int, int]:
        """Patient index range ``[start, stop)`` of chunk ``j``."""
        start = j * self.chunk_size
        return start, min(start + self.chunk_size, self.sweep.n_patients)

    def done(self) -> np.ndarray:
        """Flags of written chunks, shape (n_points, n_chunks), bool."""
        flags = np.asarray(self._arrays["chunk_done"][...])
        return flags.reshape(self.sweep.n_points, self.n_chunks).astype(bool)

    def write(self, point: int, j: int, result: dict) -> None:
        """Store chunk ``j`` of grid point ``point`` and flag it done (data first)."""
        start, stop = self.chunk_range(j)
        index = self.sweep.index(point)
        region = (*index, slice(start, stop))
        writes = [(self._arrays[m], region, np.asarray(result[m], dtype=np.float64))
                  for m in self.sweep.metrics]  # fmt: skip
        writes.append((self._arrays["status"], region, np.asarray(result["status"], np.int16)))
        traj = result.get("trajectories")
        if traj is not None:
            sub = (*index, slice(start, start + traj["status"].size))
            writes += [(self.group[f"traj_{o.name}"], sub, traj[o.name])
                       for o in self.sweep.model.observables]  # fmt: skip
            writes.append((self.group["traj_status"], sub, np.asarray(traj["status"], np.int16)))
        _write_all(writes)
        self._arrays["chunk_done"][(*index, j)] = 1  # only once the data are on disk


def _write_all(writes) -> None:
    """Write ``(array, region, values)`` triples concurrently (one round trip to zarr's event
    loop instead of one per array: about 10x faster per chunk on a loaded 2-core machine)."""
    try:
        import asyncio

        from zarr.core.sync import sync

        async def run():
            await asyncio.gather(*(a._async_array.setitem(r, v) for a, r, v in writes))

        sync(run())
    except (ImportError, AttributeError):  # a zarr without the async internals: one by one
        for array, region, values in writes:
            array[region] = values


def open_store(path):
    """Open a sweep store as an :class:`xarray.Dataset` (lazy, dask-backed).

    ``status`` keeps its integer codes (no masking); metric NaNs are NaN.

    Raises
    ------
    ScenarioError
        When ``path`` is not a cartkin sweep store.
    """
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise ScenarioError(f"{path}: no such sweep store")
    try:
        ds = xr.open_zarr(str(path), mask_and_scale=False, consolidated=False)
    except Exception as exc:
        raise ScenarioError(f"{path}: not a cartkin sweep store ({exc})") from None
    if ds.attrs.get("cartkin_sweep_store") != STORE_VERSION:
        raise ScenarioError(f"{path}: not a cartkin sweep store (no cartkin_sweep_store attribute)")
    return ds


def _check_same_solver(path, attrs, sweep) -> None:
    """Refuse to resume a store computed with other solver options (the shipped sweep setting
    of a model can change between cartkin versions while the scenario text does not)."""
    if "solver" not in attrs:
        # a store from before the setting was recorded: a scenario without [solver] was then
        # computed at the single-simulation default, which a sweep no longer uses
        if sweep.solver.origin != "scenario":
            raise ScenarioError(
                f"--out {path}: the store predates recorded solver settings; {sweep.source} has "
                "no [solver] table, so it was computed at the single-simulation default "
                "(rodas5, rtol 1e-8), while a sweep without [solver] now runs at the "
                f"{sweep.solver.origin} setting ({sweep.solver.method}, rtol "
                f"{sweep.solver.rtol:g}); results are never mixed: write to a new --out"
            )
        return
    stored = json.loads(attrs["solver"])
    now = {**sweep.solver.options(), "atol_states": sweep.solver.atol_states}
    if {k: stored.get(k, {}) for k in now} != now:
        raise ScenarioError(
            f"--out {path}: the store was computed with solver {stored['method']} rtol "
            f"{stored['rtol']:g} atol {stored['atol']:g} but {sweep.source} now runs with "
            f"{now['method']} rtol {now['rtol']:g} atol {now['atol']:g} ({sweep.solver.origin} "
            "setting); results are never mixed: write to a new --out, or put the stored options "
            "in a [solver] table to resume"
        )
