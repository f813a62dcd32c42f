use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn load_text(text: &str) -> Result<Loaded> {
    parse(text, Path::new("config.properties"), &no_env)
}

fn err_line(text: &str) -> String {
    let e = load_text(text).expect_err("must fail");
    assert_eq!(e.kind().exit_code(), 2);
    e.to_string()
}

/// The configuration shown in the original description (its lost letters restored).
const DESCRIPTION_EXAMPLE: &str = "## 阿里云oss 连接配置
endpoint= oss.aliyuncs.com
accessKeyId = xxxxxxx
accessKeySecret = xxxxxxx
bucket = db-backup
## mongodb 连接配置
# 建议用从库的地址,减少对主库压力
db_host= localhost
db_port= 27017
# 如果是增量备份方案,为步骤2中的创建的用户
db_user= testb
db_passwd= testb
# 目标库
db_name= chen
# 备份到本地的临时目录
db_backup_root_path= /temp/titan_backup/
# 如果使用mongo客户端绿色版的,写上mongo客户端的绝对路径
mongo_shell_path= /alidata1/dev/hanxuetong/mongodb/mongodb-linux-x86_64-3.0.6/bin/
# 增量备份还是全量备份 1: 增量备份 0:全量备份
is_inc_backup=1
# 每多少天进行一次全量备份
full_backup_period=7
# 是否上传到oss,如果 1 ,上传成功后会删除本地备份文件;0:不上传到oss
is_upload_to_oss= 0
";

#[test]
fn description_example_parses() {
    let s = load_text(DESCRIPTION_EXAMPLE).unwrap().settings;
    assert_eq!(s.endpoint, "oss.aliyuncs.com");
    assert_eq!(s.access_key_secret.expose(), "xxxxxxx");
    assert_eq!(s.bucket, "db-backup");
    assert_eq!(s.db_host, "localhost");
    assert_eq!(s.db_port, 27017);
    assert_eq!(s.db_user, "testb");
    assert_eq!(s.db_name, "chen");
    assert_eq!(s.db_backup_root_path, PathBuf::from("/temp/titan_backup/"));
    assert_eq!(s.mode, Mode::Incremental { period_days: 7 });
    assert!(!s.is_upload_to_oss);
    assert!(s.storage.is_none());
    assert_eq!(s.cycle_prefix, "mongodb_cycle_backup_titan_");
    assert_eq!(s.upload_concurrency, 5);
    assert_eq!(s.storage_options.part_size, 8 << 20);
    assert_eq!(s.compression_level, 6);
}

#[test]
fn template_parses_with_upload_and_region() {
    // As shipped, its placeholders are refused; filled in, it is valid.
    let text = include_str!("../../config.properties");
    let err = load_text(text).unwrap_err().to_string();
    assert!(
        err.contains("db_passwd: \"change-me\" is still the template's placeholder"),
        "{err}"
    );
    let text = text.replace("change-me", "secret-1");
    let err = load_text(&text).unwrap_err().to_string();
    assert!(
        err.contains("accessKeyId: \"your-access-key-id\" is still the template's placeholder"),
        "{err}"
    );
    let text = text
        .replace("your-access-key-id", "LTAI5tExample")
        .replace("your-access-key-secret", "secret-2");
    let loaded = load_text(&text).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let s = loaded.settings;
    match s.storage {
        Some(StorageTarget::Oss {
            region, signature, ..
        }) => {
            assert_eq!(region.as_deref(), Some("cn-hangzhou"));
            assert_eq!(signature, SignatureVersion::V4);
        }
        other => panic!("expected OSS, got {other:?}"),
    }
}

#[test]
fn crlf_bom_hash_password_windows_path() {
    let text = "\u{feff}db_host = db1\r\ndb_port=27017\r\ndb_passwd = p#ss=w0rd!\r\ndb_name=app\r\n\
                db_backup_root_path= H:\\pythoncode\\temp\\back\\\r\nis_inc_backup=0\r\nis_upload_to_oss=0\r\n";
    let s = load_text(text).unwrap().settings;
    assert_eq!(s.db_passwd.expose(), "p#ss=w0rd!");
    assert_eq!(
        s.db_backup_root_path,
        PathBuf::from("H:\\pythoncode\\temp\\back\\")
    );
    assert_eq!(s.db_host, "db1");
    assert_eq!(s.mode, Mode::Full);
}

const BASE: &str = "db_host=localhost\ndb_port=27017\ndb_name=app\ndb_backup_root_path=/tmp/b/\nis_inc_backup=0\nis_upload_to_oss=0\n";

#[test]
fn bad_port_names_file_line_key() {
    let text = "# c\ndb_host=h\n\n\n\n\n\ndb_port=27o17\ndb_name=a\ndb_backup_root_path=/x\nis_inc_backup=0\nis_upload_to_oss=0\n";
    assert_eq!(
        err_line(text),
        "config.properties:8: db_port: \"27o17\" is not a port number"
    );
}

#[test]
fn each_bad_value_has_its_line() {
    let cases = [
        ("is_inc_backup=2", "is_inc_backup: \"2\" is not 0 or 1"),
        (
            "is_upload_to_oss=yes",
            "is_upload_to_oss: \"yes\" is not 0 or 1",
        ),
        ("db_port=70000", "db_port: \"70000\" is not a port number"),
        (
            "compression_level=12",
            "compression_level: \"12\" is not a compression level from 0 to 9",
        ),
        (
            "upload_concurrency=0",
            "upload_concurrency: \"0\" is not a number from 1 to 64",
        ),
        (
            "upload_part_size_mb=2048",
            "upload_part_size_mb: \"2048\" is not a number of MiB from 1 to 1024",
        ),
        (
            "keep_cycles=-1",
            "keep_cycles: \"-1\" is not a whole number (0 = keep all)",
        ),
        (
            "oss_signature_version=3",
            "oss_signature_version: \"3\" is not 4 or 1",
        ),
        (
            "log_level=loud",
            "log_level: \"loud\" is not one of error, warn, info, debug",
        ),
        (
            "db_name=a.b",
            "db_name: \"a.b\" is not a valid database name",
        ),
    ];
    for (line, expected) in cases {
        let text = format!("{BASE}{line}\n");
        assert_eq!(err_line(&text), format!("config.properties:7: {expected}"));
    }
}

#[test]
fn inc_mode_requires_period() {
    let text = BASE.replace("is_inc_backup=0", "is_inc_backup=1");
    assert_eq!(
        err_line(&text),
        "config.properties: missing key full_backup_period"
    );
    let text = format!("{text}full_backup_period=x\n");
    assert_eq!(
        err_line(&text),
        "config.properties:7: full_backup_period: \"x\" is not a whole number of days"
    );
}

#[test]
fn upload_keys_required_only_when_uploading() {
    let text = BASE.replace("is_upload_to_oss=0", "is_upload_to_oss=1");
    assert!(err_line(&text).contains("bucket"));
    let text =
        format!("{text}bucket=db-backup\nendpoint=oss-cn-shanghai.aliyuncs.com\naccessKeyId=AK\n");
    assert_eq!(
        err_line(&text),
        "config.properties: accessKeySecret is required when is_upload_to_oss=1 (or set MONGO_OSS_ACCESS_KEY_SECRET)"
    );
    let env = |k: &str| (k == ENV_ACCESS_KEY_SECRET).then(|| "from-env".to_string());
    let s = parse(&text, Path::new("config.properties"), &env)
        .unwrap()
        .settings;
    assert_eq!(s.access_key_secret.expose(), "from-env");
}

#[test]
fn unknown_region_needs_oss_region_for_v4() {
    let text = BASE.replace("is_upload_to_oss=0", "is_upload_to_oss=1")
        + "bucket=bk1\nendpoint=http://oss.internal:9000\naccessKeyId=AK\naccessKeySecret=SK\n";
    assert_eq!(
        err_line(&text),
        "config.properties:8: endpoint: \"http://oss.internal:9000\" names no OSS region; set oss_region (or oss_signature_version=1)"
    );
    let ip = text.replace("oss.internal", "10.0.0.1") + "oss_region=cn-hangzhou\n";
    assert!(err_line(&ip).contains("is an IP address"));
    let ok = format!("{text}oss_region=cn-hangzhou\n");
    assert!(load_text(&ok).is_ok());
    let v1 = format!("{text}oss_signature_version=1\n");
    assert!(load_text(&v1).is_ok());
}

#[test]
fn storage_urls() {
    let up = BASE.replace("is_upload_to_oss=0", "is_upload_to_oss=1");
    let s = load_text(&format!("{up}storage_url=file:///srv/bucket\n"))
        .unwrap()
        .settings;
    assert!(
        matches!(s.storage, Some(StorageTarget::Folder { ref root }) if root == Path::new("/srv/bucket"))
    );
    let s = load_text(&format!(
        "{up}storage_url=s3://bk?endpoint=http://127.0.0.1:5000&region=eu-west-1\naccessKeyId=a\naccessKeySecret=b\n"
    ))
    .unwrap()
    .settings;
    match s.storage {
        Some(StorageTarget::S3 {
            bucket,
            endpoint,
            region,
            crc32c,
            ..
        }) => {
            assert_eq!(bucket, "bk");
            assert_eq!(endpoint.as_deref(), Some("http://127.0.0.1:5000"));
            assert_eq!(region, "eu-west-1");
            assert!(
                crc32c,
                "uploads carry a CRC32C unless the URL says checksum=none"
            );
        }
        other => panic!("{other:?}"),
    }
    let none = load_text(&format!(
        "{up}storage_url=s3://bk?checksum=none\naccessKeyId=a\naccessKeySecret=b\n"
    ))
    .unwrap()
    .settings;
    assert!(matches!(
        none.storage,
        Some(StorageTarget::S3 { crc32c: false, .. })
    ));
    assert!(err_line(&format!("{up}storage_url=s3://bk?checksum=md5\n")).contains("checksum=md5"));
    assert!(err_line(&format!("{up}storage_url=ftp://x\n")).contains("unknown scheme"));
}

#[test]
fn warnings_for_unknown_keys_and_json_hides_secrets() {
    let text = format!("{BASE}colour=blue\ndb_passwd=hunter2\n");
    let loaded = load_text(&text).unwrap();
    assert_eq!(
        loaded.warnings,
        vec!["config.properties:7: unknown key \"colour\" ignored".to_string()]
    );
    let json = loaded.settings.to_json(false);
    assert_eq!(json["db_passwd"], "***");
    assert_eq!(json["db_port"], 27017);
    assert_eq!(json["is_inc_backup"], 0);
    assert!(!json.to_string().contains("hunter2"));
    assert_eq!(loaded.settings.to_json(true)["db_passwd"], "hunter2");
    assert!(!format!("{:?}", loaded.settings).contains("hunter2"));
}

#[test]
fn uri_passwords_are_masked() {
    assert_eq!(
        mask_uri_password("mongodb://backup:s3cr%40t@db1:27017,db2/?replicaSet=rs0"),
        "mongodb://backup:***@db1:27017,db2/?replicaSet=rs0"
    );
    assert_eq!(
        mask_uri_password("mongodb://db1/?tls=true"),
        "mongodb://db1/?tls=true"
    );
    assert_eq!(mask_uri_password("localhost"), "localhost");
    let text = BASE.replace("db_host=localhost", "db_host=mongodb://u:pw@h/");
    let json = load_text(&text).unwrap().settings.to_json(false);
    assert_eq!(json["db_host"], "mongodb://u:***@h/");
}

#[test]
fn a_relative_root_is_the_config_files_neighbour() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.properties");
    std::fs::write(
        &cfg,
        BASE.replace(
            "db_backup_root_path=/tmp/b/",
            "db_backup_root_path=C:\\backup\\",
        ),
    )
    .unwrap();
    let loaded = load(&cfg, &no_env).unwrap();
    assert_eq!(
        loaded.settings.db_backup_root_path,
        dir.path().join("C:\\backup\\")
    );
    assert!(loaded
        .warnings
        .iter()
        .any(|w| w.contains("is a Windows path")));
}

#[test]
fn check_config_prints_every_key_in_order() {
    let s = load_text(BASE).unwrap().settings;
    let json = s.to_json(false);
    let printed: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let listed: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
    assert_eq!(printed, listed);
}
