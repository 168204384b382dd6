"""Households: who lives where and how to reach them. The pure part is re-exported here:
:mod:`.model` (``Household``, ``Channel``, CSV/GeoJSON rows), :mod:`.phones`, the columnar
:mod:`.table` (NumPy), :mod:`.merge`, the spatial :mod:`.index` (households found in an area,
attached to their nearest pipe), :mod:`.service_area` (all of it together) and :mod:`.files`
(the one module that reads the ``[area]`` files). :mod:`.registry` is the flow that imports
the households file into the store and builds the service area from it (not re-exported:
it needs the store).
"""

from incident.households.emails import EmailError, normalise_email
from incident.households.files import (
    HouseholdLoad,
    HouseholdTableLoad,
    Progress,
    iter_households_file,
    load_household_table,
    load_households,
    load_service_area,
    read_layers,
    read_network,
    read_valves,
)
from incident.households.index import (
    Attachment,
    HouseholdIndex,
    Selection,
    attach_households,
    count_by_language,
    count_by_priority,
    households_affected,
    households_in_area,
    households_in_area_among,
    households_on_links,
    iter_households,
)
from incident.households.merge import HouseholdMerge, merge_households
from incident.households.model import (
    Channel,
    Household,
    HouseholdSource,
    Need,
    Priority,
    iter_households_csv,
    iter_households_geojson,
)
from incident.households.phones import PhoneRules
from incident.households.service_area import (
    Isolation,
    LoadReport,
    ServiceArea,
    build_service_area,
    isolate_pipe,
    service_extent,
)
from incident.households.table import HouseholdTable

__all__ = [
    "Attachment",
    "Channel",
    "EmailError",
    "Household",
    "HouseholdIndex",
    "HouseholdLoad",
    "HouseholdMerge",
    "HouseholdSource",
    "HouseholdTable",
    "HouseholdTableLoad",
    "Isolation",
    "LoadReport",
    "Need",
    "PhoneRules",
    "Priority",
    "Progress",
    "Selection",
    "ServiceArea",
    "attach_households",
    "build_service_area",
    "count_by_language",
    "count_by_priority",
    "households_affected",
    "households_in_area",
    "households_in_area_among",
    "households_on_links",
    "isolate_pipe",
    "iter_households",
    "iter_households_csv",
    "iter_households_file",
    "iter_households_geojson",
    "load_household_table",
    "load_households",
    "load_service_area",
    "merge_households",
    "normalise_email",
    "read_layers",
    "read_network",
    "read_valves",
    "service_extent",
]
