"""The result store of a sweep: one Zarr group that xarray opens as a Dataset.

Layout (``xarray.open_zarr(path)``, or :func:`open_store`; the metadata are consolidated, so
xarray opens it in one read and without warnings)::

    dimensions   one per axis, named after its dotted key ("cart.cells_per_kg", ...), then
                 "patient" (virtual patient index) and "patient_chunk" (for chunk_done)
    coordinates  each axis's values: float64 for numbers, strings for names; an eGFR axis with
                 a "dialysis" arm stays numeric (NaN at the dialysis arm) and the boolean
                 coordinate "patient.dialysis" along it marks that arm, so
                 ds.sel({"patient.egfr_ml_min_173m2": 60}) and
                 ds.where(ds["patient.dialysis"].compute(), drop=True) both work (open_store
                 loads that coordinate, so .compute() is not needed there); patient
    variables    one per metric, float64 (axes..., patient); NaN where the metric is not
                 reached (e.g. no B-cell recovery by the horizon) or the patient failed
                 APLASIA (axes..., patient) bool: B cells fell below the B-cell threshold
                 (TAPLASIA defined) within the horizon; models with a B-cell observable only;
                 False for failed patients (read it with status)
                 horizon_days (axes...) float64: last simulated day of each grid point, the
                 censoring time of TRECOV (cartkin.sweep.recovery)
                 status (axes..., patient) int16: 0 solved, < 0 failed (cartkin.ode.Status,
                 -100 engine error), -32768 not computed yet
                 chunk_done (axes..., patient_chunk) uint8: 1 once a chunk is written
                 with [sweep] trajectories = m: traj_<observable> (axes..., traj_patient,
                 t_days) float64 and traj_status (axes..., traj_patient) for patients 0..m-1
    attributes   every variable and coordinate has long_name (a description) and units ("1"
                 for dimensionless numbers, flags and booleans; none on text coordinates); the group has title (with the actual
                 sizes), scenario_text, scenario_hash (SHA-256), scenario_file, seed,
                 n_patients, chunk_size, metrics, variability, model, cartkin_version, ...

Chunks are (1, ..., 1, chunk_size): one grid point and a run of patients, the unit of work.
A chunk's arrays are written concurrently (one round trip to zarr's event loop): 9 ms per chunk
of 10,000 patients x 8 metrics here instead of about 90 ms one array at a time.
A chunk's data are written before its ``chunk_done`` flag and each Zarr chunk file is replaced
atomically, so a sweep killed at any moment leaves a store whose flagged chunks are complete;
rerunning the same command computes only the unflagged ones. The consolidated metadata are
written once at creation; chunk writes change no metadata.

Layout 1 (cartkin before this layout: eGFR coordinate as text, no APLASIA) is refused with a
message; rerun the sweep into a new store.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cartkin.errors import ScenarioError
from cartkin.sweep.axes import DIALYSIS_COORD, axis_attrs
from cartkin.sweep.spec import METRIC_LONG_NAMES, METRIC_UNITS, Sweep

__all__ = ["APLASIA", "NOT_RUN", "STORE_VERSION", "SweepStore", "check_layout", "open_store"]

NOT_RUN = -32768
#: Store layout version (attribute ``cartkin_sweep_store``); 1: eGFR as text, no APLASIA.
STORE_VERSION = 2
#: Name of the per-patient aplasia flag in the store.
APLASIA = "APLASIA"


def check_layout(path, attrs, action: str = "read") -> None:
    """Raise ScenarioError unless ``attrs`` are those of a store of this layout version."""
    version = attrs.get("cartkin_sweep_store")
    if version == STORE_VERSION:
        return
    if isinstance(version, int) and version < STORE_VERSION:
        raise ScenarioError(
            f"{path}: a sweep store of layout {version}, written by an older cartkin (its eGFR "
            f"coordinate is text and it has no APLASIA); this cartkin cannot {action} it: run "
            "the sweep again into a new --out (or delete the old store)"
        )
    raise ScenarioError(f"{path}: not a cartkin sweep store (no cartkin_sweep_store attribute "
                        f"{STORE_VERSION})")  # fmt: skip


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
        names = (
            *sweep.metrics,
            "status",
            "chunk_done",
            *([APLASIA] if sweep.tracks_aplasia else []),
        )
        self._arrays = {name: group[name] for name in names}

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
            if "cartkin_sweep_store" not in attrs:
                raise ScenarioError(
                    f"--out {path}: exists and is not a cartkin sweep store; choose another path"
                )
            check_layout(f"--out {path}", attrs, "resume")
            if attrs.get("scenario_hash") != sweep.scenario_hash:
                raise ScenarioError(
                    f"--out {path}: the store holds a sweep of another scenario (file "
                    f"{attrs.get('scenario_file')!r}, sha256 {attrs.get('scenario_hash', '?')[:12]}"
                    f"...) but {sweep.source} has sha256 {sweep.scenario_hash[:12]}...; results "
                    "are never mixed: write to a new --out or delete the old store"
                )
            if int(attrs["n_patients"]) != sweep.n_patients:
                raise ScenarioError(
                    f"--out {path}: the store holds {attrs['n_patients']} virtual patients per "
                    f"grid point, not {sweep.n_patients}: resume it with --n-patients "
                    f"{attrs['n_patients']}, or write to a new --out"
                )
            _check_same_solver(path, attrs, sweep)
            return cls(path, group, sweep, int(attrs["chunk_size"]))
        return cls._create(path, sweep, chunk_size)

    @classmethod
    def _create(cls, path: Path, sweep: Sweep, chunk_size: int) -> SweepStore:
        import warnings

        import zarr

        from cartkin import __version__

        chunk_size = int(min(chunk_size, sweep.n_patients))
        n_chunks = -(-sweep.n_patients // chunk_size)
        group = zarr.open_group(str(path), mode="w-")
        group.attrs.update(
            {
                "cartkin_sweep_store": STORE_VERSION,
                "title": sweep.title,
                "scenario_name": sweep.base.name,
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
        # non-dimension coordinates, named in each variable's CF "coordinates" attribute
        extra = " ".join(DIALYSIS_COORD for a in sweep.axes if a.has_dialysis)
        for axis in sweep.axes:
            coord = axis.coordinate()
            numeric = coord.dtype.kind == "f"
            arr = group.create_array(axis.key, shape=coord.shape, dtype=coord.dtype if numeric
                                     else str, dimension_names=[axis.key])  # fmt: skip
            arr[...] = coord
            long_name, units = axis_attrs(axis.key, sweep.model)
            if axis.has_dialysis:
                long_name += f" (NaN on hemodialysis: see {DIALYSIS_COORD})"
            arr.attrs.update(_attrs(long_name, units if numeric else None))
            if axis.has_dialysis:
                mark = group.create_array(DIALYSIS_COORD, shape=coord.shape, dtype="bool",
                                          dimension_names=[axis.key])  # fmt: skip
                mark[...] = axis.dialysis_mask()
                mark.attrs.update(_attrs("on hemodialysis (the [sweep.dialysis] schedule)", "1"))
        patient = group.create_array(
            "patient", shape=(sweep.n_patients,), dtype="int64", dimension_names=["patient"]
        )
        patient[...] = np.arange(sweep.n_patients)
        patient.attrs.update(_attrs("virtual patient index (the same patient at every grid "
                                    "point: common random numbers)", "1"))  # fmt: skip
        horizon = group.create_array("horizon_days", shape=shape, dtype="float64",
                                     dimension_names=dims)  # fmt: skip
        horizon[...] = np.reshape([sweep.horizon_days(g) for g in range(sweep.n_points)], shape)
        horizon.attrs.update(_attrs("last simulated day after CAR-T infusion (censoring time of "
                                    "TRECOV)", "day", extra))  # fmt: skip
        chunks = (*(1 for _ in shape), chunk_size)
        for name in sweep.metrics:
            arr = group.create_array(
                name, shape=(*shape, sweep.n_patients), dtype="float64", chunks=chunks,
                fill_value=np.nan, dimension_names=[*dims, "patient"],
            )  # fmt: skip
            arr.attrs.update(_attrs(METRIC_LONG_NAMES[name], METRIC_UNITS[name], extra))
            arr.attrs["metric"] = name
        if sweep.tracks_aplasia:
            arr = group.create_array(
                APLASIA, shape=(*shape, sweep.n_patients), dtype="bool", chunks=chunks,
                fill_value=False, dimension_names=[*dims, "patient"],
            )  # fmt: skip
            arr.attrs.update(_attrs("B-cell aplasia reached within the horizon (B cells below "
                                    "the B-cell threshold; False where status != 0)", "1",
                                    extra))  # fmt: skip
        status = group.create_array(
            "status", shape=(*shape, sweep.n_patients), dtype="int16", chunks=chunks,
            fill_value=NOT_RUN, dimension_names=[*dims, "patient"],
        )  # fmt: skip
        status.attrs.update(_attrs("solver status (0 solved, < 0 failed)", "1", extra))
        status.attrs.update(
            {
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
        done.attrs.update(_attrs(f"1 when the chunk of {chunk_size} patients is written", "1",
                                 extra))  # fmt: skip
        if sweep.trajectories:
            cls._create_trajectories(group, sweep, dims, extra)
        with warnings.catch_warnings():
            # zarr notes that consolidated metadata are not yet in the Zarr v3 spec; zarr and
            # xarray read them, and without them xarray warns on every open
            warnings.filterwarnings("ignore", message="Consolidated metadata", module="zarr")
            zarr.consolidate_metadata(str(path))
        group = zarr.open_group(str(path), mode="r+")
        return cls(path, group, sweep, chunk_size)

    @staticmethod
    def _create_trajectories(group, sweep: Sweep, dims, extra) -> None:
        t = sweep.trajectory_t_days
        m = sweep.trajectories
        coord = group.create_array("t_days", shape=t.shape, dtype="float64",
                                   dimension_names=["t_days"])  # fmt: skip
        coord[...] = t
        coord.attrs.update(_attrs("days after CAR-T infusion", "day"))
        idx = group.create_array("traj_patient", shape=(m,), dtype="int64",
                                 dimension_names=["traj_patient"])  # fmt: skip
        idx[...] = np.arange(m)
        idx.attrs.update(_attrs("virtual patient index of the stored trajectories", "1"))
        shape = sweep.shape
        for obs in sweep.model.observables:
            arr = group.create_array(
                f"traj_{obs.name}", shape=(*shape, m, t.size), dtype="float64",
                chunks=(*(1 for _ in shape), m, t.size), fill_value=np.nan,
                dimension_names=[*dims, "traj_patient", "t_days"],
            )  # fmt: skip
            arr.attrs.update(_attrs(obs.description, obs.unit, extra))
        status = group.create_array(
            "traj_status", shape=(*shape, m), dtype="int16", chunks=(*(1 for _ in shape), m),
            fill_value=NOT_RUN, dimension_names=[*dims, "traj_patient"],
        )  # fmt: skip
        status.attrs.update(_attrs("solver status of the stored trajectories", "1", extra))

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
        """Store chunk ``j`` of grid point ``point`` and flag it done (data first).

        ``result`` holds ``sweep.engine_metrics`` and ``status`` (:func:`cartkin.sweep.runner.compute_chunk`).
        """
        start, stop = self.chunk_range(j)
        index = self.sweep.index(point)
        region = (*index, slice(start, stop))
        writes = [(self._arrays[m], region, np.asarray(result[m], dtype=np.float64))
                  for m in self.sweep.metrics]  # fmt: skip
        writes.append((self._arrays["status"], region, np.asarray(result["status"], np.int16)))
        if APLASIA in self._arrays:
            # aplasia reached <=> TAPLASIA defined (the sweep uses one B-cell threshold for
            # aplasia and recovery, cartkin.sweep.population.batch_engine)
            aplasia = (np.asarray(result["status"]) == 0) & ~np.isnan(result["TAPLASIA"])
            writes.append((self._arrays[APLASIA], region, aplasia))
        traj = result.get("trajectories")
        if traj is not None:
            sub = (*index, slice(start, start + traj["status"].size))
            writes += [(self.group[f"traj_{o.name}"], sub, traj[o.name])
                       for o in self.sweep.model.observables]  # fmt: skip
            writes.append((self.group["traj_status"], sub, np.asarray(traj["status"], np.int16)))
        _write_all(writes)
        self._arrays["chunk_done"][(*index, j)] = 1  # only once the data are on disk


def _attrs(long_name: str, units: str | None, coordinates: str = "") -> dict:
    """Variable attributes: long_name, units (numbers only) and the CF ``coordinates`` list."""
    out = {"long_name": long_name}
    if units is not None:
        out["units"] = units
    if coordinates:
        out["coordinates"] = coordinates
    return out


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
        ds = xr.open_zarr(str(path), mask_and_scale=False)
    except Exception as exc:
        raise ScenarioError(f"{path}: not a cartkin sweep store ({exc})") from None
    check_layout(path, ds.attrs)
    if DIALYSIS_COORD in ds.coords:  # small; loaded so that ds.where(ds[...]) works directly
        ds = ds.assign_coords({DIALYSIS_COORD: ds[DIALYSIS_COORD].load()})
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
