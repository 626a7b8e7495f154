"""Plugin maps: how the stages of our chain land on a producer's VST3 plugins.

A map (``presets/plugins/<name>.toml``, versioned) lists *inserts* in chain order. Each names
a plugin bundle, the schema stages it carries, its channel layout, and per plugin parameter
where its value comes from:

- ``from = "<stage>.<param>"``: a schema parameter, converted ``same`` (identical units) or
  through a measured ``table`` of (schema value, plugin value) points, interpolated on the
  schema parameter's own scale (log for Hz, Q, ms, ratio);
- ``off``: the value that makes the parameter neutral when its stage is off;
- ``[insert.fixed]``: constants; ``skip``: host-side parameters (buffer size, meters) never set.

Two refinements use the plugin itself, so the match does not rest on a formula:

- ``fit = "response"`` (EQ inserts): each band's plugin values start from the map and are then
  fitted so the plugin's measured magnitude response (an impulse through the plugin) matches
  the built-in filter's, within 20 Hz–20 kHz.
- ``fit = "graphic"`` (graphic EQ inserts): the plugin's band gains are solved together, by
  least squares on each band's measured response, so the plugin's whole curve matches the
  built-in stage's (the plugin's bands need not sit where ours do, nor be as many).
- ``calibrate = "<plugin param>"`` (compressors): on an excerpt of the track, that parameter is
  shifted until the plugin's output loudness equals the built-in stage's. Detectors differ
  between compressors, so the same numbers do not mean the same gain reduction.

Stages no insert carries run on the built-in renderer, in their place in the chain; the plan
says which.

The package: :mod:`.maps` (loading), :mod:`.binding` (a map's insert on its loaded plugin:
response fit and calibration), :mod:`.chain` (the plan and the renderer), :mod:`.presets`
(``.vstpreset`` export) and :mod:`.learn` (drafting a map's EQ table from a plugin's measured
response). Hosting itself is :mod:`mixbridge.effects.vst3`.
"""

from mixbridge.effects.plugins.chain import PluginChainRenderer, plan_steps
from mixbridge.effects.plugins.maps import PluginMap, load_map, locate, map_names
from mixbridge.effects.plugins.presets import configured_limiter, export_presets, stage_values

__all__ = ["PluginChainRenderer", "PluginMap", "configured_limiter", "export_presets", "load_map", "locate",
           "map_names", "plan_steps", "stage_values"]
