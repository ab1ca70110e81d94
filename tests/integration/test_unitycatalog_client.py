"""Contract: the unmodified unitycatalog-client (the UC OSS Python SDK) against lakeray."""

import asyncio

import pytest
from unitycatalog.client import (
    ApiClient,
    CatalogsApi,
    Configuration,
    FunctionsApi,
    GrantsApi,
    SchemasApi,
    TablesApi,
    VolumesApi,
)
from unitycatalog.client.exceptions import ApiException
from unitycatalog.client.models import (
    ColumnInfo,
    ColumnTypeName,
    CreateCatalog,
    CreateFunction,
    CreateFunctionRequest,
    CreateSchema,
    CreateTable,
    CreateVolumeRequestContent,
    DataSourceFormat,
    FunctionParameterInfo,
    FunctionParameterInfos,
    PermissionsChange,
    Privilege,
    SecurableType,
    TableType,
    UpdateCatalog,
    UpdatePermissions,
    VolumeType,
)

pytestmark = pytest.mark.ray


async def _scenario(url: str, token: str, user: str):
    config = Configuration(host=url + "/api/2.1/unity-catalog")
    async with ApiClient(config, header_name="Authorization", header_value=f"Bearer {token}") as api:
        catalogs, schemas, tables = CatalogsApi(api), SchemasApi(api), TablesApi(api)
        made = await catalogs.create_catalog(CreateCatalog(name="ucc", comment="from the UC client"))
        assert made.name == "ucc" and made.owner == "admin"
        assert "ucc" in [c.name for c in (await catalogs.list_catalogs()).catalogs]
        updated = await catalogs.update_catalog("ucc", UpdateCatalog(comment="updated"))
        assert updated.comment == "updated"
        await schemas.create_schema(CreateSchema(name="sch", catalog_name="ucc"))
        assert (await schemas.get_schema("ucc.sch")).full_name == "ucc.sch"
        table = await tables.create_table(CreateTable(
            # the 0.4 client requires both fields; for a MANAGED table lakeray picks the storage
            # (an empty location) and keeps the data as Lance
            name="tbl", catalog_name="ucc", schema_name="sch", table_type=TableType.MANAGED,
            data_source_format=DataSourceFormat.DELTA, storage_location="",
            columns=[ColumnInfo(name="id", type_name=ColumnTypeName.LONG, type_text="long",
                                type_json='{"name":"id","type":"long","nullable":true,"metadata":{}}',
                                position=0, nullable=True)]))
        assert table.table_type == TableType.MANAGED and table.columns[0].name == "id"
        listed = await tables.list_tables(catalog_name="ucc", schema_name="sch")
        assert [t.name for t in listed.tables] == ["tbl"]
        volume = await VolumesApi(api).create_volume(CreateVolumeRequestContent(
            catalog_name="ucc", schema_name="sch", name="vol", volume_type=VolumeType.MANAGED))
        assert volume.full_name == "ucc.sch.vol"
        fn = await FunctionsApi(api).create_function(CreateFunctionRequest(function_info=CreateFunction(
            name="double", catalog_name="ucc", schema_name="sch",
            input_params=FunctionParameterInfos(parameters=[FunctionParameterInfo(
                name="x", type_text="int", type_name=ColumnTypeName.INT, type_json='"int"', position=0)]),
            data_type=ColumnTypeName.INT, full_data_type="int", routine_body="EXTERNAL",
            routine_definition="return x * 2", parameter_style="S", is_deterministic=True,
            sql_data_access="NO_SQL", is_null_call=False, security_type="DEFINER", specific_name="double",
            external_language="PYTHON")))
        assert fn.full_name == "ucc.sch.double"
        grants = GrantsApi(api)
        await grants.update(SecurableType.CATALOG, "ucc", UpdatePermissions(changes=[PermissionsChange(
            principal=user, add=[Privilege.USE_CATALOG, Privilege.USE_SCHEMA, Privilege.SELECT], remove=[])]))
        perms = await grants.get(SecurableType.CATALOG, "ucc")
        assert perms.privilege_assignments[0].principal == user
        assert set(perms.privilege_assignments[0].privileges) == {
            Privilege.USE_CATALOG, Privilege.USE_SCHEMA, Privilege.SELECT}
        with pytest.raises(ApiException) as err:
            await catalogs.get_catalog("nope")
        assert err.value.status == 404
        await tables.delete_table("ucc.sch.tbl")
        await catalogs.delete_catalog("ucc", force=True)


def test_unitycatalog_client_contract(platform):
    admin = platform.client("http")
    admin.create_principal("uc_user")
    asyncio.run(_scenario(platform.url, platform.token, "uc_user"))
