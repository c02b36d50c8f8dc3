from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Error(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class RegisterRequest(_message.Message):
    __slots__ = ("host_version",)
    HOST_VERSION_FIELD_NUMBER: _ClassVar[int]
    host_version: str
    def __init__(self, host_version: _Optional[str] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("registration_json",)
    REGISTRATION_JSON_FIELD_NUMBER: _ClassVar[int]
    registration_json: bytes
    def __init__(self, registration_json: _Optional[bytes] = ...) -> None: ...

class InitRequest(_message.Message):
    __slots__ = ("plugin_name", "host_version", "host_address", "host_token", "config")
    class ConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PLUGIN_NAME_FIELD_NUMBER: _ClassVar[int]
    HOST_VERSION_FIELD_NUMBER: _ClassVar[int]
    HOST_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HOST_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    plugin_name: str
    host_version: str
    host_address: str
    host_token: str
    config: _containers.ScalarMap[str, str]
    def __init__(self, plugin_name: _Optional[str] = ..., host_version: _Optional[str] = ..., host_address: _Optional[str] = ..., host_token: _Optional[str] = ..., config: _Optional[_Mapping[str, str]] = ...) -> None: ...

class InitResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CallRequest(_message.Message):
    __slots__ = ("function", "args_json", "timeout_seconds")
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    function: str
    args_json: bytes
    timeout_seconds: float
    def __init__(self, function: _Optional[str] = ..., args_json: _Optional[bytes] = ..., timeout_seconds: _Optional[float] = ...) -> None: ...

class CallResponse(_message.Message):
    __slots__ = ("result_json", "error")
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    result_json: bytes
    error: Error
    def __init__(self, result_json: _Optional[bytes] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class HookRequest(_message.Message):
    __slots__ = ("hook", "payload_json")
    HOOK_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    hook: str
    payload_json: bytes
    def __init__(self, hook: _Optional[str] = ..., payload_json: _Optional[bytes] = ...) -> None: ...

class HookResponse(_message.Message):
    __slots__ = ("result_json", "error")
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    result_json: bytes
    error: Error
    def __init__(self, result_json: _Optional[bytes] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class ShutdownRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ShutdownResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HostCallRequest(_message.Message):
    __slots__ = ("method", "args_json")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    method: str
    args_json: bytes
    def __init__(self, method: _Optional[str] = ..., args_json: _Optional[bytes] = ...) -> None: ...

class HostCallResponse(_message.Message):
    __slots__ = ("result_json", "error")
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    result_json: bytes
    error: Error
    def __init__(self, result_json: _Optional[bytes] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...
